"""`make doctor`'s model line: one models-list call against the fake APIs proves the key and the
endpoint, and a broken set-up is named exactly. No Docker: the check is called directly."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import pytest

from frontend.cli import _model_check
from frontend.model_check import model_report
from settings import load_settings
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI

pytestmark = pytest.mark.models

_MODEL_ENV = (
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "OPENAI_API_KEY",
    "OPENAI_API_BASE",
    "OPENAI_BASE_URL",
)


@pytest.fixture
def environ(monkeypatch):
    """Set the model environment for one check (the clients read os.environ); returns the
    settings the doctor would load from it."""
    for name in _MODEL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")

    def apply(**env: str):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return load_settings(env)

    return apply


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """Accepts connections (the kernel does) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


# -- Gemini ------------------------------------------------------------------------------------


def test_gemini_key_accepted_and_model_listed_is_ok(environ):
    with FakeGemini() as fake:
        url = fake.url
        settings = environ(APP_MODEL="gemini-2.5-flash", **fake.env())
        status, what, fix = model_report(settings)
    assert status == "ok", what
    assert what == f"model: gemini-2.5-flash (key accepted by {url}; the model is listed)"
    assert fix == ""
    [listing] = fake.requests
    assert (listing.method, listing.path) == ("GET", "/v1beta/models")
    assert listing.headers["x-goog-api-key"] == "fake"


def test_gemini_wrong_key_is_named_as_the_problem(environ):
    with FakeGemini() as fake:
        url = fake.url
        settings = environ(APP_MODEL="gemini-2.5-flash", **fake.env(api_key="not-my-key"))
        check = _model_check(settings)
    assert check.status == "fail"
    assert f"{url} rejected the API key" in check.what
    assert "API key not valid" in check.what  # the provider's own words
    assert "GOOGLE_API_KEY" in check.fix
    assert check.line().startswith("[FAIL] model: gemini-2.5-flash:")


def test_gemini_endpoint_not_listening_is_unreachable_at_its_url(environ):
    url = closed_port_url()
    settings = environ(APP_MODEL="gemini-2.5-flash", GOOGLE_API_KEY="k", GOOGLE_GEMINI_BASE_URL=url)
    status, what, fix = model_report(settings)
    assert status == "fail"
    assert f"the endpoint {url} is unreachable" in what
    assert "Connection refused" in what
    assert "GOOGLE_GEMINI_BASE_URL" in fix


def test_gemini_endpoint_that_never_answers_fails_within_the_timeout(environ):
    with silent_server() as url:
        settings = environ(
            APP_MODEL="gemini-2.5-flash", GOOGLE_API_KEY="k", GOOGLE_GEMINI_BASE_URL=url
        )
        began = time.monotonic()
        status, what, _ = model_report(settings, timeout_s=0.5)
    assert time.monotonic() - began < 5
    assert status == "fail"
    assert f"the endpoint {url} is unreachable" in what


def test_gemini_model_missing_from_the_list_names_the_listed_ones(environ):
    with FakeGemini() as fake:
        url = fake.url
        settings = environ(APP_GEMINI_MODEL="gemini-9-ultra", **fake.env())
        status, what, fix = model_report(settings)
    assert status == "fail"
    assert f"gemini-9-ultra is not in the models list of {url}" in what
    assert fix.startswith("set APP_GEMINI_MODEL (or APP_MODEL) to a listed model: gemini-2.5-flash")


def test_gemini_without_a_key_says_so_without_a_call(environ):
    with FakeGemini() as fake:
        settings = environ(APP_MODEL="gemini-2.5-flash", GOOGLE_GEMINI_BASE_URL=fake.url)
        status, what, _ = model_report(settings)
    assert (status, what) == (
        "fail",
        "model: gemini-2.5-flash but no GOOGLE_API_KEY / GEMINI_API_KEY is set",
    )
    assert fake.requests == []


def test_no_model_configured_is_the_offline_model(environ):
    status, what, fix = model_report(environ())
    assert status == "warn"
    assert "offline model" in what
    assert "GOOGLE_API_KEY" in fix


# -- OpenAI-compatible (LiteLLM's openai/ provider) ------------------------------------------


def test_openai_compatible_key_accepted_and_model_listed_is_ok(environ):
    with FakeOpenAI() as fake:
        base = fake.api_base
        settings = environ(APP_MODEL="openai/fake-model", **fake.env())
        status, what, _ = model_report(settings)
    assert status == "ok", what
    assert what == (f"model: openai/fake-model (key accepted by {base}; the model is listed)")
    [listing] = fake.requests
    assert (listing.method, listing.path) == ("GET", "/v1/models")
    assert listing.headers["authorization"] == "Bearer fake"


def test_openai_compatible_base_url_from_openai_base_url(environ):
    with FakeOpenAI() as fake:
        settings = environ(
            APP_MODEL="openai/fake-model", OPENAI_BASE_URL=fake.api_base, OPENAI_API_KEY="fake"
        )
        status, _, _ = model_report(settings)
    assert status == "ok"


def test_openai_compatible_wrong_key_is_named_as_the_problem(environ):
    with FakeOpenAI() as fake:
        base = fake.api_base
        settings = environ(APP_MODEL="openai/fake-model", **fake.env(api_key="sk-wrong-key"))
        status, what, fix = model_report(settings)
    assert status == "fail"
    assert f"{base} rejected the API key (401: Incorrect API key provided" in what
    assert fix == "check OPENAI_API_KEY in .env"


def test_openai_compatible_endpoint_not_listening_is_unreachable(environ):
    url = closed_port_url() + "/v1"
    settings = environ(APP_MODEL="openai/fake-model", OPENAI_API_BASE=url, OPENAI_API_KEY="k")
    status, what, fix = model_report(settings)
    assert status == "fail"
    assert f"the endpoint {url} is unreachable (" in what
    assert "Connection refused" in what
    assert "OPENAI_API_BASE" in fix


def test_openai_compatible_endpoint_that_never_answers_fails_within_the_timeout(environ):
    with silent_server() as url:
        settings = environ(APP_MODEL="openai/m", OPENAI_API_BASE=url, OPENAI_API_KEY="k")
        began = time.monotonic()
        status, what, _ = model_report(settings, timeout_s=0.5)
    assert time.monotonic() - began < 5
    assert status == "fail"
    assert f"the endpoint {url} is unreachable" in what


def test_openai_compatible_base_url_without_v1_is_explained(environ):
    with FakeOpenAI() as fake:
        url = fake.url
        settings = environ(
            APP_MODEL="openai/fake-model", OPENAI_API_BASE=fake.url, OPENAI_API_KEY="fake"
        )
        status, what, fix = model_report(settings)
    assert status == "fail"
    assert f"{url}/models does not exist (404)" in what
    assert "/v1" in fix


def test_openai_compatible_model_missing_from_the_list(environ):
    with FakeOpenAI(models=("llama3.1", "qwen2.5")) as fake:
        base = fake.api_base
        settings = environ(APP_MODEL="openai/fake-model", **fake.env())
        status, what, fix = model_report(settings)
    assert status == "fail"
    assert f"fake-model is not in the models list of {base}" in what
    assert fix == "set APP_MODEL to a listed model: llama3.1, qwen2.5"


def test_openai_compatible_without_a_key_says_so(environ):
    settings = environ(APP_MODEL="openai/fake-model", OPENAI_API_BASE=closed_port_url())
    status, what, fix = model_report(settings)
    assert (status, what) == ("fail", "model: openai/fake-model but no OPENAI_API_KEY is set")
    assert "any value for a local server" in fix


def test_openai_compatible_default_tag_of_a_local_server_counts_as_listed(environ):
    with FakeOpenAI(models=("llama3.1:latest",)) as fake:  # as Ollama lists its models
        settings = environ(APP_MODEL="openai/llama3.1", **fake.env())
        status, what, _ = model_report(settings)
    assert status == "ok", what
