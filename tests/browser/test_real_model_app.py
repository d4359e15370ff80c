"""The whole app with Gemini as its model (against the fake Gemini API) in Debian's Chromium: what a
person with a GOOGLE_API_KEY sees: the model in the header, examples written for a model, a tool
step and an answer, and a rate limit that is retried in front of them. A second model offered
(APP_EXTRA_MODELS, a LiteLLM model against the fake OpenAI API) is picked from the menu for a new
chat, and each chat keeps the model it was started with."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from frontend.panels import examples
from tests.browser.conftest import artifact, start_app
from tests.fakes import gemini as g
from tests.fakes import openai as o

expect.set_options(timeout=30_000)

pytestmark = [pytest.mark.browser, pytest.mark.docker, pytest.mark.models]


OTHER_MODEL = "openai/fake-model"


@pytest.fixture(scope="module")
def fake():
    """The fake Gemini API, and the environment that points the app's google-genai at it."""
    with g.FakeGemini() as server, pytest.MonkeyPatch.context() as env:
        server.use_in(env)
        yield server


@pytest.fixture(scope="module")
def fake_openai():
    """The fake OpenAI-compatible API, where LiteLLM's `openai/` provider is sent."""
    with o.FakeOpenAI() as server, pytest.MonkeyPatch.context() as env:
        server.use_in(env)
        yield server


@pytest.fixture(scope="module")
def gemini_app(docker_client, app_label, tmp_path_factory, fake, fake_openai):
    served = start_app(
        f"{app_label}-gemini-ui",
        tmp_path_factory.mktemp("gemini-ui-data"),
        model="gemini-2.5-flash",
        extra_models=OTHER_MODEL,
        model_retry_base_s=0.2,
    )
    yield served.url
    served.close()
    served.service.executor.cleanup_all(remove_volumes=True)


@pytest.fixture
def page(browser, gemini_app):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def send(page, text: str) -> None:
    box = page.locator("#chatbox textarea")
    box.fill(text)
    box.press("Enter")


def wait_idle(page) -> None:
    expect(page.locator("#chatbox textarea")).to_be_editable(timeout=60_000)


def test_gemini_app_shows_its_model_runs_a_step_and_retries_a_rate_limit(page, gemini_app, fake):
    page.goto(gemini_app, wait_until="domcontentloaded")
    page.locator("#chatbox textarea").wait_for()
    expect(page.locator("#chats")).to_contain_text("New chat")

    # The header names the model; the examples are requests for a model, not code.
    banner = page.locator("#model-banner")
    expect(banner).to_contain_text("Model: gemini-2.5-flash")
    expect(banner).not_to_contain_text("Offline model")
    wanted = examples(offline=False)
    buttons = page.locator("button.gallery-item")
    expect(buttons).to_have_count(len(wanted))
    for i, example in enumerate(wanted):
        expect(buttons.nth(i)).to_have_text(example.title)
        expect(buttons.nth(i)).to_have_attribute("title", example.text)
        assert not example.text.startswith(("$", "```", "/files"))

    # A prompt: the model calls a tool, the step shows its verdict, then the answer.
    fake.play(
        g.call("execute_bash", {"command": "echo from-gemini-$((6*7))"}),
        g.text("The sandbox printed from-gemini-42."),
    )
    send(page, "Print something in the sandbox")
    chat = page.locator("#chatbot")
    expect(chat.get_by_text("Ran  echo from-gemini-$((6*7))").first).to_be_visible()
    expect(chat.locator(".step-ok").first).to_have_text("ok")
    expect(chat).to_contain_text("The sandbox printed from-gemini-42.")
    wait_idle(page)
    [_, after_step] = fake.model_requests
    assert "from-gemini-42" in after_step.body.decode()  # the real output went to the model

    # A rate limit: the chat says it retries, then the answer arrives.
    fake.play(g.rate_limited(retry_delay_s=1), g.text("Answer after the wait."))
    send(page, "And once more")
    notice = chat.get_by_text("Model busy: retrying")
    expect(notice.first).to_be_visible()
    expect(chat).to_contain_text("Answer after the wait.")
    wait_idle(page)
    notice.first.click()  # the notice is collapsed: its title shows, the wait on opening it
    expect(chat).to_contain_text("Retrying in 1 s")
    expect(chat).to_contain_text("rate limit")
    shown = chat.inner_text()
    assert shown.index("Model busy: retrying") < shown.index("Answer after the wait.")
    expect(chat).not_to_contain_text("Error")
    page.screenshot(path=str(artifact("real-model-app.png")), full_page=True)
    fake.assert_clean()


def test_a_new_chat_uses_the_model_picked_and_each_chat_keeps_its_own(
    page, gemini_app, fake, fake_openai
):
    page.goto(gemini_app, wait_until="domcontentloaded")
    page.locator("#chatbox textarea").wait_for()
    chat = page.locator("#chatbot")
    banner = page.locator("#model-banner")

    # A chat with the default model first, named so it can be found again.
    page.locator("#new-chat").click()
    expect(banner).to_contain_text("Model: gemini-2.5-flash")
    fake.play(g.text("Gemini answering."))
    send(page, "gemini-chat: who answers?")
    expect(chat).to_contain_text("Gemini answering.")
    wait_idle(page)

    # The menu offers both models; a new chat with the other one goes to its API, not Gemini's.
    choice = page.locator("#model-choice")
    expect(choice).to_be_visible()
    choice.locator("input").click()
    page.get_by_role("option", name=OTHER_MODEL).click()
    page.locator("#new-chat").click()
    expect(banner).to_contain_text(f"Model: {OTHER_MODEL}")
    expect(chat).not_to_contain_text("Gemini answering.")
    gemini_asked = len(fake.model_requests)
    fake_openai.play(o.text("LiteLLM answering."))
    send(page, "litellm-chat: who answers?")
    expect(chat).to_contain_text("LiteLLM answering.")
    wait_idle(page)
    [asked] = fake_openai.model_requests
    assert asked.json["model"] == "fake-model"
    assert "litellm-chat: who answers?" in asked.body.decode()
    assert len(fake.model_requests) == gemini_asked

    # Back in the first chat: its header and its next turn are Gemini's again.
    page.locator("#chats label", has_text="gemini-chat").click()
    expect(chat).to_contain_text("Gemini answering.")
    expect(banner).to_contain_text("Model: gemini-2.5-flash")
    fake.play(g.text("Gemini again."))
    send(page, "still you?")
    expect(chat).to_contain_text("Gemini again.")
    wait_idle(page)
    assert len(fake_openai.model_requests) == 1
    assert len(fake.model_requests) == gemini_asked + 1
    fake.assert_clean()
    fake_openai.assert_clean()
