"""The path real users take, end to end: `ChatService` with the model built from its string (as the
app builds it: retries, error words), the app's own agent (its tool declarations, skills and
instruction), the real ADK Runner, google-genai / LiteLLM over HTTP to the fake APIs, and real
Docker sandboxes. Each test plays a scripted conversation and asserts what the person sees
(the chat events) and what the model was sent (the fake's records, each request checked
against what the real API accepts: `assert_clean()`).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import gc
import json
import logging
import time
from collections.abc import Sequence

import pytest

from agent.events import (
    ChatEvent,
    ErrorEvent,
    FilesUploaded,
    ModelRetrying,
    TextDelta,
    TextFinal,
    ToolCallFinished,
    ToolCallStarted,
    TurnDone,
)
from agent.prompts import INSTRUCTION
from agent.service import ChatService
from executor import chat_key
from settings import load_settings
from tests.fakes import gemini as g
from tests.fakes import openai as o
from tool_surface import TOOL_NAMES

pytestmark = [pytest.mark.models, pytest.mark.docker]

GEMINI = "gemini-2.5-flash"
LITELLM = "openai/fake-model"
SKILL_TOOLS = ("load_skill", "load_skill_resource", "run_skill_script")
FIRST_REQUEST_BEFORE = 9848  # bytes of the first Gemini request before issue 15
FIRST_REQUEST_TARGET = 8192
# After a Stop or a failed turn, ADK sends the next user message right after the last user turn
# (the aborted call's answer, or the message that failed): two user turns in a row. The real API
# takes that; the fake records it as a contract note, not a refusal.
USER_TURNS_IN_A_ROW = {"role"}


# -- fixtures and helpers -------------------------------------------------------------------


@dataclasses.dataclass
class Chat:
    """One chat of a service: send messages, keep every turn's events."""

    service: ChatService
    user: str
    session: str

    async def send(
        self, text: str, files: Sequence[tuple[str, bytes]] = (), *, stop_after: float | None = None
    ) -> list[ChatEvent]:
        """One turn's events; with `stop_after`, Stop is pressed that long after a step began."""
        events: list[ChatEvent] = []
        async for event in self.service.stream(self.user, self.session, text, files):
            events.append(event)
            if stop_after is not None and isinstance(event, ToolCallStarted):
                await asyncio.sleep(stop_after)
                assert self.service.stop(self.user, self.session)
        return events

    async def sandbox(self, command: str) -> str:
        _code, out, _err = await self.service.executor.execute_bash(
            chat_key(self.user, self.session), command
        )
        return out


@pytest.fixture
async def open_chat(executor, tmp_path, user_id):
    """Factory: a new chat of a ChatService that builds `model` from its string, as the app
    does. Retries wait 20-40 ms. Chats (container, workspace) are deleted at the end."""
    made: list[Chat] = []

    async def open_chat(model: str, **overrides) -> Chat:
        settings = dataclasses.replace(
            load_settings({}),
            data_dir=tmp_path / f"data-{len(made)}",
            model_retry_base_s=0.04,
            **overrides,
        )
        service = ChatService(settings, executor=executor, model=model)
        chat = Chat(service, user_id, await service.new_session(user_id))
        made.append(chat)
        return chat

    yield open_chat
    for chat in made:
        await chat.service.delete_chat(chat.user, chat.session)
        await chat.service.close(executor=False)


@pytest.fixture
def openai_env(fake_openai, monkeypatch):
    """The fake OpenAI-compatible server in the environment LiteLLM reads (as a user sets it)."""
    fake_openai.use_in(monkeypatch)
    return fake_openai


def of(kind: type, events: list[ChatEvent]) -> list:
    return [e for e in events if isinstance(e, kind)]


def answer(events: list[ChatEvent]) -> str:
    finals = of(TextFinal, events)
    return finals[-1].text if finals else ""


def function_responses(request) -> list[dict]:
    """The functionResponse parts of the last content of a Gemini request."""
    return [
        p["functionResponse"]
        for p in request.json["contents"][-1]["parts"]
        if "functionResponse" in p
    ]


def tool_messages(request) -> list[dict]:
    """The tool messages after the last assistant message of an OpenAI request."""
    messages = request.json["messages"]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return [m for m in messages[last + 1 :] if m["role"] == "tool"]


def assert_in_words(message: str) -> None:
    """What a person reads: no raw provider dict, no link for ADK's developers, no traceback."""
    for raw in ("{", "'error'", "adk-docs", "Traceback", "google.genai", "github.com"):
        assert raw not in message, f"{raw!r} in {message!r}"


def declared_tools(request) -> list[str]:
    return [d["name"] for t in request.json["tools"] for d in t["functionDeclarations"]]


# -- Gemini: google-genai inside the app's retrying Gemini model ----------------------------


async def test_gemini_tool_call_runs_in_the_sandbox_and_its_output_reaches_the_model(
    fake_gemini, open_chat
):
    fake_gemini.play(
        g.call("execute_bash", {"command": "echo sandbox-$((6*7)); uname -s"}),
        g.text("The sandbox says sandbox-42 and runs Linux."),
    )
    chat = await open_chat(GEMINI)

    events = await chat.send("What does the sandbox say?")

    [started] = of(ToolCallStarted, events)
    [finished] = of(ToolCallFinished, events)
    assert started.name == finished.name == "execute_bash"
    assert finished.outcome == "ok"
    assert finished.response["stdout"] == "sandbox-42\nLinux\n"
    assert answer(events) == "The sandbox says sandbox-42 and runs Linux."
    assert of(ErrorEvent, events) == []
    assert events[-1] == TurnDone(stopped=False)
    first, second = fake_gemini.model_requests
    # The app's own agent: its tools, its skills, its instruction.
    assert declared_tools(first) == [*TOOL_NAMES, *SKILL_TOOLS]
    system = first.json["systemInstruction"]["parts"][0]["text"]
    assert system.startswith(INSTRUCTION.strip()[:60])
    assert "csv-summary" in system
    # The command's real output went back to the model.
    [reply] = function_responses(second)
    assert reply["name"] == "execute_bash"
    assert reply["response"]["stdout"] == "sandbox-42\nLinux\n"
    assert reply["response"]["exit_code"] == 0
    fake_gemini.assert_clean()


async def test_gemini_parallel_calls_both_run_and_both_are_answered(fake_gemini, open_chat):
    fake_gemini.play(
        g.parallel_calls(
            g.FunctionCall("execute_bash", {"command": "echo one > one.txt; cat one.txt"}),
            g.FunctionCall("run_python", {"code": "print(2 + 2)"}),
        ),
        g.text("one and 4."),
    )
    chat = await open_chat(GEMINI)

    events = await chat.send("Do both at once.")

    assert [e.name for e in of(ToolCallStarted, events)] == ["execute_bash", "run_python"]
    finished = {e.name: e.response for e in of(ToolCallFinished, events)}
    assert finished["execute_bash"]["stdout"] == "one\n"
    assert finished["run_python"]["stdout"] == "4\n"
    assert answer(events) == "one and 4."
    replies = function_responses(fake_gemini.model_requests[1])
    assert [(r["name"], r["response"]["stdout"]) for r in replies] == [
        ("execute_bash", "one\n"),
        ("run_python", "4\n"),
    ]
    fake_gemini.assert_clean()


async def test_gemini_text_then_a_call_across_chunks(fake_gemini, open_chat):
    fake_gemini.play(
        *g.text_then_tool_call(
            "Let me count the files first.", "execute_bash", {"command": "ls | wc -l"}, "None."
        )
    )
    chat = await open_chat(GEMINI)

    events = await chat.send("How many files do I have?")

    kinds = [type(e).__name__ for e in events]
    assert kinds.index("TextDelta") < kinds.index("ToolCallStarted")
    assert "".join(e.text for e in of(TextDelta, events)).startswith(
        "Let me count the files first."
    )
    assert of(TextFinal, events)[0].text == "Let me count the files first."
    assert of(ToolCallFinished, events)[0].response["stdout"] == "0\n"
    assert answer(events) == "None."
    model_turn = fake_gemini.model_requests[1].json["contents"][1]
    assert [sorted(p) for p in model_turn["parts"]] == [
        ["text"],
        ["functionCall", "thoughtSignature"],
    ]
    fake_gemini.assert_clean()


SALES_CSV = b"date,sales,visits\n2024-01-01,10,100\n2024-01-02,12,130\n2024-01-03,,90\n"


async def test_gemini_loads_a_skill_and_runs_its_script_on_an_upload(fake_gemini, open_chat):
    command = (
        "python3 /skills/csv-summary/scripts/summarize.py /workspace/sales.csv "
        "--chart /workspace/sales_chart.png"
    )
    fake_gemini.play(
        g.call("load_skill", {"skill_name": "csv-summary"}),
        g.call(
            "run_skill_script",
            {"skill_name": "csv-summary", "file_path": "scripts/summarize.py", "command": command},
        ),
        g.text("3 rows; the chart is /workspace/sales_chart.png."),
    )
    chat = await open_chat(GEMINI)

    events = await chat.send("Summarise my CSV", files=[("sales.csv", SALES_CSV)])

    assert of(FilesUploaded, events) == [FilesUploaded((("/workspace/sales.csv", len(SALES_CSV)),))]
    loaded, ran = of(ToolCallFinished, events)
    assert "# CSV summary" in json.dumps(loaded.response)
    assert ran.name == "run_skill_script"
    assert ran.response["exit_code"] == 0, ran.response
    assert "rows: 3" in ran.response["stdout"]
    assert "sales: float64, missing 1" in ran.response["stdout"]
    files = {f.path: f.size for f in await chat.service.workspace_files(chat.user, chat.session)}
    assert files["/workspace/sales_chart.png"] > 1000
    assert [p.rsplit("/", 1)[-1] for p in ran.images] == ["sales_chart.png"]  # shown inline
    assert answer(events) == "3 rows; the chart is /workspace/sales_chart.png."
    first, after_load, after_script = fake_gemini.model_requests
    assert "sales.csv" in json.dumps(first.json["contents"][-1])  # the upload note
    [script_reply] = function_responses(after_script)
    assert "rows: 3" in script_reply["response"]["stdout"]
    # Gemini also sees the chart: an image part of the function response.
    # (google-genai writes this part's fields in proto's snake_case, which the API also reads)
    [image] = script_reply["parts"]
    inline = image.get("inlineData") or image["inline_data"]
    assert (inline.get("mimeType") or inline["mime_type"]) == "image/png"
    assert base64.urlsafe_b64decode(inline["data"]).startswith(b"\x89PNG")
    assert "# CSV summary" in json.dumps(function_responses(after_load))
    fake_gemini.assert_clean()


def _errors_logged(caplog) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR and not r.getMessage().startswith("Task was destroyed")
    ]


async def test_gemini_stop_mid_command_kills_it_and_the_chat_goes_on(
    fake_gemini, open_chat, caplog
):
    caplog.set_level(logging.INFO)
    fake_gemini.play(
        g.call("execute_bash", {"command": "sleep 600", "timeout": 900}),
        g.text("Stopped it; what next?"),
    )
    chat = await open_chat(GEMINI)

    began = time.monotonic()
    events = await asyncio.wait_for(chat.send("Run the long job", stop_after=1.0), 30)

    assert time.monotonic() - began < 15
    assert events[-1] == TurnDone(stopped=True)
    [finished] = of(ToolCallFinished, events)
    assert finished.outcome == "stopped"
    assert of(ErrorEvent, events) == []
    assert "sleep 600" not in await chat.sandbox("ps -eo args=")
    assert _errors_logged(caplog) == []
    stopped = [
        r
        for r in caplog.records
        if r.getMessage() == "tool execute_bash stopped (the turn was stopped)"
    ]
    assert [r.levelno for r in stopped] == [logging.INFO]

    after = await chat.send("Never mind.")

    assert answer(after) == "Stopped it; what next?"
    history = fake_gemini.model_requests[1].json["contents"]
    assert history[2]["parts"][0]["functionResponse"]["response"] == {
        "error": "Invocation was aborted by client."
    }
    fake_gemini.assert_clean(allow=USER_TURNS_IN_A_ROW)


async def test_gemini_stop_leaves_no_pending_task_behind(fake_gemini, open_chat, caplog):
    fake_gemini.play(g.call("execute_bash", {"command": "sleep 600"}))
    chat = await open_chat(GEMINI)

    events = await asyncio.wait_for(chat.send("Run the long job", stop_after=0.5), 30)
    await asyncio.sleep(0.2)
    gc.collect()

    assert events[-1] == TurnDone(stopped=True)
    leaked = [r.getMessage() for r in caplog.records if "Task was destroyed" in r.getMessage()]
    assert leaked == []
    fake_gemini.assert_clean()


async def test_gemini_429_is_retried_visibly_and_the_turn_finishes(fake_gemini, open_chat):
    fake_gemini.play(g.rate_limited(retry_delay_s=0.3), g.text("Here it is."))
    chat = await open_chat(GEMINI)

    events = await chat.send("Hello")

    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "ModelRetrying"  # said before anything else
    assert kinds[-2:] == ["TextFinal", "TurnDone"]
    [retrying] = of(ModelRetrying, events)
    assert retrying.delay_s == pytest.approx(0.3)  # the wait the API asked for
    assert "rate limit" in retrying.reason
    assert_in_words(retrying.reason)
    assert answer(events) == "Here it is."
    first, second = fake_gemini.model_requests
    assert second.received_at - first.received_at >= 0.3
    assert second.body == first.body  # the same request again
    fake_gemini.assert_clean()


async def test_gemini_503_is_retried_with_backoff_and_the_turn_finishes(fake_gemini, open_chat):
    fake_gemini.play(*g.after_unavailable(g.text("Back again."), times=2))
    chat = await open_chat(GEMINI)

    events = await chat.send("Hello")

    retries = of(ModelRetrying, events)
    assert len(retries) == 2
    assert 0.02 <= retries[0].delay_s <= 0.04  # base 0.04 s, full jitter on the upper half
    assert 0.04 <= retries[1].delay_s <= 0.08  # doubled
    assert "unavailable or overloaded" in retries[0].reason
    assert answer(events) == "Back again."
    assert of(ErrorEvent, events) == []
    assert len(fake_gemini.model_requests) == 3
    fake_gemini.assert_clean()


async def test_gemini_overload_that_lasts_ends_in_one_error_after_bounded_retries(
    fake_gemini, open_chat
):
    fake_gemini.play(*(g.unavailable() for _ in range(3)))
    chat = await open_chat(GEMINI, model_retries=2)

    events = await chat.send("Hello")

    assert len(of(ModelRetrying, events)) == 2
    [error] = of(ErrorEvent, events)
    assert error.message == (
        "gemini-2.5-flash is unavailable or overloaded right now (503). Try again in a moment."
    )
    assert events[-1] == TurnDone(stopped=False)
    assert len(fake_gemini.model_requests) == 3
    fake_gemini.assert_clean()


async def test_gemini_400_is_one_error_in_words_and_not_retried(fake_gemini, open_chat):
    fake_gemini.play(g.invalid_argument("Request contains an invalid argument."))
    chat = await open_chat(GEMINI)

    events = await chat.send("Hello")

    [error] = of(ErrorEvent, events)
    assert error.message == (
        "gemini-2.5-flash refused the request (400): Request contains an invalid argument."
    )
    assert_in_words(error.message)
    assert of(ModelRetrying, events) == []
    assert events[-1] == TurnDone(stopped=False)
    assert len(fake_gemini.model_requests) == 1
    fake_gemini.assert_clean()

    fake_gemini.play(g.text("Fine now."))  # the chat goes on
    assert answer(await chat.send("Again")) == "Fine now."
    fake_gemini.assert_clean(allow=USER_TURNS_IN_A_ROW)


async def test_gemini_malformed_call_is_one_error_in_words(fake_gemini, open_chat):
    fake_gemini.play(g.malformed_call())
    chat = await open_chat(GEMINI)

    events = await chat.send("Run something clever")

    [error] = of(ErrorEvent, events)
    assert "malformed" in error.message
    assert "Ask again" in error.message
    assert_in_words(error.message)
    assert of(ToolCallStarted, events) == []
    assert events[-1] == TurnDone(stopped=False)
    fake_gemini.assert_clean()


async def test_gemini_empty_reply_is_said_in_words(fake_gemini, open_chat):
    fake_gemini.play(g.empty())
    chat = await open_chat(GEMINI)

    events = await chat.send("Hello")

    assert [type(e) for e in events] == [ErrorEvent, TurnDone]
    assert events[0].message == (
        "gemini-2.5-flash returned an empty reply. Send your message again, or rephrase it."
    )
    fake_gemini.assert_clean()


async def test_gemini_empty_reply_after_a_step_is_said_after_the_step(fake_gemini, open_chat):
    fake_gemini.play(g.call("execute_bash", {"command": "echo done"}), g.empty())
    chat = await open_chat(GEMINI)

    events = await chat.send("Run it")

    kinds = [type(e).__name__ for e in events]
    assert kinds[-3:] == ["ToolCallFinished", "ErrorEvent", "TurnDone"]
    assert "returned an empty reply" in of(ErrorEvent, events)[0].message
    fake_gemini.assert_clean()


async def test_gemini_first_request_is_not_bigger_than_before(fake_gemini, open_chat):
    fake_gemini.play(g.text("Hi."))
    chat = await open_chat(GEMINI)

    await chat.send("Hello")

    assert fake_gemini.model_requests[0].size <= FIRST_REQUEST_BEFORE
    fake_gemini.assert_clean()


async def test_gemini_first_request_is_at_most_8_kb(fake_gemini, open_chat):
    fake_gemini.play(g.text("Hi."))
    chat = await open_chat(GEMINI)

    await chat.send("Hello")

    assert fake_gemini.model_requests[0].size <= FIRST_REQUEST_TARGET
    fake_gemini.assert_clean()


# -- LiteLLM: the app's retrying LiteLlm over the openai SDK ---------------------------------


async def test_litellm_tool_round_trip(openai_env, open_chat):
    openai_env.play(
        o.call("execute_bash", {"command": "echo litellm-$((6*7))"}), o.text("It printed 42.")
    )
    chat = await open_chat(LITELLM)

    events = await chat.send("Print something")

    [finished] = of(ToolCallFinished, events)
    assert finished.response["stdout"] == "litellm-42\n"
    assert answer(events) == "It printed 42."
    assert of(ErrorEvent, events) == []
    first, second = openai_env.model_requests
    assert first.json["model"] == "fake-model"
    assert first.json["stream"] is True
    assert [t["function"]["name"] for t in first.json["tools"]] == [*TOOL_NAMES, *SKILL_TOOLS]
    assert first.json["messages"][0]["role"] == "system"
    [assistant] = [m for m in second.json["messages"] if m.get("tool_calls")]
    [reply] = tool_messages(second)
    assert reply["tool_call_id"] == assistant["tool_calls"][0]["id"]
    assert json.loads(reply["content"])["stdout"] == "litellm-42\n"
    openai_env.assert_clean()


async def test_litellm_429_is_retried_visibly_by_the_app_and_the_turn_finishes(
    openai_env, open_chat
):
    openai_env.play(o.rate_limited(), o.text("Here it is."))
    chat = await open_chat(LITELLM)

    events = await chat.send("Hello")

    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "ModelRetrying"
    assert kinds[-2:] == ["TextFinal", "TurnDone"]
    assert "rate limit" in of(ModelRetrying, events)[0].reason
    assert answer(events) == "Here it is."
    first, second = openai_env.model_requests
    # The app retried, not the openai SDK under LiteLLM (its own retries are off).
    assert first.headers["x-stainless-retry-count"] == second.headers["x-stainless-retry-count"]
    assert second.headers["x-stainless-retry-count"] == "0"
    openai_env.assert_clean()


async def test_litellm_429_waits_as_long_as_the_server_asks(openai_env, open_chat):
    openai_env.play(o.rate_limited(retry_after_ms=300), o.text("Done."))
    chat = await open_chat(LITELLM)

    events = await chat.send("Hello")

    [retry] = of(ModelRetrying, events)
    assert retry.delay_s == pytest.approx(0.3)  # the retry-after-ms header, not our backoff
    assert retry.reason == "openai/fake-model is rate limited (429)."
    assert answer(events) == "Done."
    openai_env.assert_clean()


async def test_litellm_429_asking_for_minutes_is_reported_not_retried_early(openai_env, open_chat):
    openai_env.play(o.rate_limited(retry_after_ms=110_000))
    chat = await open_chat(LITELLM)

    events = await chat.send("Hello")

    assert of(ModelRetrying, events) == []  # retrying sooner would only be refused again
    [error] = of(ErrorEvent, events)
    assert "rate limit" in error.message
    assert len(openai_env.model_requests) == 1
    openai_env.assert_clean()


async def test_litellm_400_is_one_error_in_words_and_not_retried(openai_env, open_chat):
    openai_env.play(o.invalid_request("Invalid value for 'temperature'.", "temperature"))
    chat = await open_chat(LITELLM)

    events = await chat.send("Hello")

    [error] = of(ErrorEvent, events)
    assert error.message.startswith("openai/fake-model refused the request (400): ")
    assert error.message.endswith("Invalid value for 'temperature'.")
    assert "litellm" not in error.message.lower()  # the provider's words, not the wrapper's
    assert_in_words(error.message)
    assert of(ModelRetrying, events) == []
    assert events[-1] == TurnDone(stopped=False)
    assert len(openai_env.model_requests) == 1
    openai_env.assert_clean()
