"""`make doctor`'s model check: one cheap call (the models list) proves the key and the endpoint.

A key that is merely set says nothing: the check asks the provider for its models list with the
key the app will use, at the endpoint the app will use, and says exactly what is wrong otherwise
(key rejected, endpoint unreachable at URL, model not offered there). Gemini is asked through
google-genai (which honours GOOGLE_GEMINI_BASE_URL); an OpenAI-compatible server (LiteLLM's
`openai/...`) with a GET of `<api_base>/models`. Returns (status, what, fix) for the doctor.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import urllib.error
import urllib.request
from typing import Any

from settings import Settings, model_name

logger = logging.getLogger(__name__)

GEMINI_ENDPOINT = "https://generativelanguage.googleapis.com"
OPENAI_ENDPOINT = "https://api.openai.com/v1"
LITELLM_HINT = "`.venv/bin/pip install -e '.[litellm]'` and the provider's API key"
_SHOWN_MODELS = 8

Report = tuple[str, str, str]  # status ("ok", "warn", "fail"), what, fix


def model_report(settings: Settings, *, timeout_s: float = 5.0) -> Report:
    """The doctor's line about the model in use (APP_MODEL, else Gemini with a key, else
    offline): checked with one models-list call where the provider allows it."""
    name = model_name(settings)
    if name.startswith("offline"):
        return (
            "warn",
            "model: the offline model (runs the code you send; no AI)",
            "set GOOGLE_API_KEY in .env for Gemini, or APP_MODEL to another model",
        )
    if "/" in name:
        if importlib.util.find_spec("litellm") is None:
            return ("fail", f"model: {name} needs LiteLLM, which is not installed", LITELLM_HINT)
        provider, _, model = name.partition("/")
        if provider == "openai":
            return check_openai_compatible(name, model, timeout_s=timeout_s)
        return ("ok", f"model: {name} (LiteLLM; the {provider} endpoint is not checked)", "")
    if name.startswith("gemini"):
        if not settings.google_api_key_set:
            return (
                "fail",
                f"model: {name} but no GOOGLE_API_KEY / GEMINI_API_KEY is set",
                "put GOOGLE_API_KEY=... in .env",
            )
        if os.environ.get("GOOGLE_GENAI_USE_VERTEXAI", "").lower() in {"1", "true"}:
            return ("ok", f"model: {name} on Vertex AI (key and endpoint not checked)", "")
        return check_gemini(name, timeout_s=timeout_s)
    return ("ok", f"model: {name}", "")


def check_gemini(name: str, *, timeout_s: float = 5.0) -> Report:
    """List the Gemini API's models with the environment's key at its endpoint."""
    import httpx
    from google import genai
    from google.genai import errors, types

    endpoint = os.environ.get("GOOGLE_GEMINI_BASE_URL") or GEMINI_ENDPOINT
    client = genai.Client(http_options=types.HttpOptions(timeout=int(timeout_s * 1000)))
    try:
        listed = [
            (m.name or "").removeprefix("models/")
            for m in client.models.list(config=types.ListModelsConfig(page_size=1000))
        ]
    except errors.ClientError as exc:
        if exc.code in (401, 403) or _about_the_key(exc):
            return (
                "fail",
                f"model: {name}: {endpoint} rejected the API key ({exc.code} {exc.status}: "
                f"{exc.message})",
                "check GOOGLE_API_KEY (or GEMINI_API_KEY) in .env: a key from "
                "https://aistudio.google.com/apikey",
            )
        return (
            "fail",
            f"model: {name}: {endpoint} refused the models list ({exc.code} {exc.status}: "
            f"{exc.message})",
            "check GOOGLE_GEMINI_BASE_URL if you set it",
        )
    except errors.ServerError as exc:
        return (
            "fail",
            f"model: {name}: {endpoint} failed ({exc.code} {exc.status}: {exc.message})",
            "the service has trouble right now: try again in a while",
        )
    except httpx.HTTPError as exc:
        return _unreachable(name, endpoint, exc, "GOOGLE_GEMINI_BASE_URL")
    finally:
        client.close()
    gemini = [m for m in listed if m.startswith("gemini")]  # not embeddings, imagen, ...
    return _listed(name, name, endpoint, gemini, "APP_GEMINI_MODEL (or APP_MODEL)")


def check_openai_compatible(name: str, model: str, *, timeout_s: float = 5.0) -> Report:
    """GET `<api_base>/models` with the environment's key, as LiteLLM's `openai/` would call."""
    endpoint = (
        os.environ.get("OPENAI_API_BASE") or os.environ.get("OPENAI_BASE_URL") or OPENAI_ENDPOINT
    ).rstrip("/")
    key = os.environ.get("OPENAI_API_KEY")
    if not key:
        return (
            "fail",
            f"model: {name} but no OPENAI_API_KEY is set",
            "put OPENAI_API_KEY=... in .env (any value for a local server that needs no key)",
        )
    url = f"{endpoint}/models"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = _openai_error(exc.read())
        if exc.code in (401, 403):
            return (
                "fail",
                f"model: {name}: {endpoint} rejected the API key ({exc.code}: {detail})",
                "check OPENAI_API_KEY in .env",
            )
        if exc.code == 404:
            return (
                "fail",
                f"model: {name}: {url} does not exist (404)",
                "check OPENAI_API_BASE: an OpenAI-compatible base URL usually ends in /v1",
            )
        return ("fail", f"model: {name}: {url} answered {exc.code}: {detail}", "")
    except (urllib.error.URLError, OSError) as exc:  # refused, DNS, timeout
        return _unreachable(name, endpoint, exc, "OPENAI_API_BASE")
    except ValueError:
        return (
            "fail",
            f"model: {name}: {url} did not answer with a models list (not JSON)",
            "check OPENAI_API_BASE: it must be the OpenAI-compatible base URL (often .../v1)",
        )
    data = body.get("data") if isinstance(body, dict) else None
    listed = [str(m.get("id")) for m in data or [] if isinstance(m, dict)]
    return _listed(name, model, endpoint, listed, "APP_MODEL")


def _listed(name: str, model: str, endpoint: str, listed: list[str], setting: str) -> Report:
    # Ollama lists "llama3.1:latest" and answers to "llama3.1" as well.
    if model in listed or f"{model}:latest" in listed:
        return ("ok", f"model: {name} (key accepted by {endpoint}; the model is listed)", "")
    shown = ", ".join(listed[:_SHOWN_MODELS]) + (", ..." if len(listed) > _SHOWN_MODELS else "")
    return (
        "fail",
        f"model: {name}: the key works, but {model} is not in the models list of {endpoint}",
        f"set {setting} to a listed model: {shown or '(the list is empty)'}",
    )


def _unreachable(name: str, endpoint: str, exc: BaseException, setting: str) -> Report:
    reason = getattr(exc, "reason", None) or exc or type(exc).__name__
    logger.debug("models list at %s failed", endpoint, exc_info=exc)
    return (
        "fail",
        f"model: {name}: the endpoint {endpoint} is unreachable ({reason})",
        f"check the network, and {setting} if you set it",
    )


def _about_the_key(exc: Any) -> bool:
    """A 400 that is about the key (Gemini answers a bad key with 400 API_KEY_INVALID)."""
    return "API_KEY" in json.dumps(exc.details or {}) or "API key" in (exc.message or "")


def _openai_error(raw: bytes) -> str:
    try:
        error = json.loads(raw).get("error")
    except (ValueError, AttributeError):
        return raw.decode("utf-8", "replace")[:200]
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)[:200]
