"""The fake model APIs driven by the real clients: ADK `Gemini` (google-genai) and ADK `LiteLlm`
(LiteLLM + openai SDK), through the real ADK Runner. No Docker, no network.

Each test plays a scripted conversation and asserts what the app would see (events, errors,
exceptions) and that every request the client sent is one the real API accepts.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

import pytest
from google.adk.agents.run_config import RunConfig, StreamingMode
from google.adk.models.google_llm import _ResourceExhaustedError
from google.genai import Client, errors, types

from tests.fakes import gemini as g
from tests.fakes import openai as o
from tests.models.conftest import FAST_RETRY, Turn, gemini, get_weather, play

pytestmark = pytest.mark.models

SUNNY = {"city": "Paris", "weather": "sunny"}


def contents(request) -> list[dict]:
    return request.json["contents"]


def function_responses(request) -> list[dict]:
    """The functionResponse parts of the last content of a Gemini request."""
    return [
        p["functionResponse"] for p in contents(request)[-1]["parts"] if "functionResponse" in p
    ]


# --------------------------------------------------------------------------------------------
# Gemini (google-genai inside ADK's Gemini model)


async def test_gemini_tool_call_then_answer(fake_gemini, make_runner):
    fake_gemini.play(*g.one_tool_call("get_weather", {"city": "Paris"}, "Sunny in Paris today."))
    runner = make_runner(gemini(), get_weather)

    turn = await play(runner, "Weather in Paris?")

    assert turn.calls == [("get_weather", {"city": "Paris"})]
    assert turn.responses == [SUNNY]
    assert turn.answer == "Sunny in Paris today."
    assert len(turn.partial_texts) == 3  # the answer streamed in three events
    first, second = fake_gemini.model_requests
    assert first.path.endswith(":streamGenerateContent")
    assert first.query == {"alt": ["sse"]}
    assert first.headers["x-goog-api-key"] == "fake"
    assert first.json["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    assert function_responses(second) == [{"name": "get_weather", "response": SUNNY}]
    # The call went back with the thought signature the model gave it (checked by the fake).
    assert "thoughtSignature" in contents(second)[1]["parts"][0]
    fake_gemini.assert_clean()


async def test_gemini_without_streaming_uses_generate_content(fake_gemini, make_runner):
    fake_gemini.play(*g.one_tool_call("get_weather", {"city": "Paris"}, "Sunny in Paris today."))
    runner = make_runner(gemini(), get_weather)

    turn = await play(runner, "Weather in Paris?", streaming=StreamingMode.NONE)

    assert turn.answer == "Sunny in Paris today."
    assert turn.partial_texts == []
    assert [r.path.rsplit(":", 1)[1] for r in fake_gemini.model_requests] == ["generateContent"] * 2
    fake_gemini.assert_clean()


async def test_gemini_parallel_calls_are_all_answered_in_one_turn(fake_gemini, make_runner):
    calls = [g.FunctionCall("get_weather", {"city": c}) for c in ("Paris", "Rome")]
    fake_gemini.play(*g.parallel_tool_calls(calls, "Sunny in both."))
    runner = make_runner(gemini(), get_weather)

    turn = await play(runner, "Weather in Paris and Rome?")

    assert turn.calls == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]
    assert turn.answer == "Sunny in both."
    responses = function_responses(fake_gemini.model_requests[1])
    assert [r["response"]["city"] for r in responses] == ["Paris", "Rome"]
    fake_gemini.assert_clean()


async def test_gemini_text_then_call_across_chunks(fake_gemini, make_runner):
    fake_gemini.play(
        *g.text_then_tool_call(
            "Let me look that up for you.", "get_weather", {"city": "Paris"}, "Sunny."
        )
    )
    runner = make_runner(gemini(), get_weather)

    turn = await play(runner, "Weather in Paris?")

    assert turn.partial_texts[:2] == ["Let me look that ", "up for you."]
    assert turn.calls == [("get_weather", {"city": "Paris"})]
    assert turn.answer == "Sunny."
    model_turn = contents(fake_gemini.model_requests[1])[1]
    assert [sorted(p) for p in model_turn["parts"]] == [
        ["text"],
        ["functionCall", "thoughtSignature"],
    ]
    fake_gemini.assert_clean()


async def test_gemini_call_ids_from_the_model_come_back_on_the_responses(fake_gemini, make_runner):
    fake_gemini.play(g.call("get_weather", {"city": "Paris"}, id="fc-7"), g.text("Sunny."))
    runner = make_runner(gemini(), get_weather)

    await play(runner, "Weather in Paris?")

    history = contents(fake_gemini.model_requests[1])
    assert history[1]["parts"][0]["functionCall"]["id"] == "fc-7"
    assert function_responses(fake_gemini.model_requests[1])[0]["id"] == "fc-7"
    fake_gemini.assert_clean()


async def test_gemini_429_then_success_with_retry_options(fake_gemini, make_runner):
    fake_gemini.play(*g.after_rate_limit(g.text("Here it is.")))
    runner = make_runner(gemini(retry_options=FAST_RETRY))

    turn = await play(runner, "Hello")

    assert turn.answer == "Here it is."
    assert turn.errors == []
    first, second = fake_gemini.model_requests
    assert 0.05 <= second.received_at - first.received_at < 1.0
    fake_gemini.assert_clean()


async def test_gemini_503_then_success_with_retry_options(fake_gemini, make_runner):
    fake_gemini.play(*g.after_unavailable(g.text("Back again."), times=2))
    runner = make_runner(gemini(retry_options=FAST_RETRY))

    turn = await play(runner, "Hello")

    assert turn.answer == "Back again."
    assert len(fake_gemini.model_requests) == 3
    fake_gemini.assert_clean()


async def test_gemini_429_without_retry_options_ends_the_turn(fake_gemini, make_runner):
    fake_gemini.play(g.rate_limited())
    runner = make_runner(gemini())
    turn = Turn()

    with pytest.raises(_ResourceExhaustedError) as raised:
        await play(runner, "Hello", turn)

    # ADK first yields an error event, then raises: the app sees the error twice.
    [(code, message)] = turn.errors
    assert code == "RESOURCE_EXHAUSTED"
    assert "adk-docs" in message
    assert "429 RESOURCE_EXHAUSTED" in message
    assert isinstance(raised.value, errors.ClientError)
    assert raised.value.code == 429
    assert raised.value.status == "RESOURCE_EXHAUSTED"
    assert len(fake_gemini.model_requests) == 1  # google-genai does not retry by default
    fake_gemini.assert_clean()


async def test_gemini_400_is_an_error_event_then_a_client_error(fake_gemini, make_runner):
    fake_gemini.play(g.invalid_argument("Request contains an invalid argument."))
    runner = make_runner(gemini(retry_options=FAST_RETRY))
    turn = Turn()

    with pytest.raises(errors.ClientError) as raised:
        await play(runner, "Hello", turn)

    assert turn.errors == [
        (
            "INVALID_ARGUMENT",
            "400 INVALID_ARGUMENT. {'error': {'code': 400, 'message': 'Request contains an "
            "invalid argument.', 'status': 'INVALID_ARGUMENT'}}",
        )
    ]
    assert raised.value.code == 400
    assert raised.value.message == "Request contains an invalid argument."
    assert len(fake_gemini.model_requests) == 1  # a 400 is not retried
    fake_gemini.assert_clean()


async def test_gemini_malformed_call_is_an_error_event_without_exception(fake_gemini, make_runner):
    fake_gemini.play(g.malformed_call())
    runner = make_runner(gemini(), get_weather)

    turn = await play(runner, "Weather in Paris?")

    # Twice (the partial event and the final one), and bare: google-genai drops the API's
    # finishMessage.
    assert [(e.partial, e.error_code, e.error_message) for e in turn.events] == [
        (True, "MALFORMED_FUNCTION_CALL", None),
        (False, "MALFORMED_FUNCTION_CALL", None),
    ]
    assert turn.calls == []
    assert turn.answer == ""
    fake_gemini.assert_clean()


async def test_gemini_empty_reply_ends_the_turn_with_no_final_event(fake_gemini, make_runner):
    fake_gemini.play(g.empty())
    runner = make_runner(gemini())

    turn = await play(runner, "Hello")

    # ADK yields only a partial event with no content (and logs "The last event is partial").
    assert turn.final == []
    assert all(not e.content or not e.content.parts for e in turn.events)
    assert turn.errors == []
    fake_gemini.assert_clean()


async def test_gemini_stop_mid_command_then_the_chat_goes_on(fake_gemini, make_runner):
    started = asyncio.Event()

    async def execute_bash(command: str) -> dict:
        """Run a shell command.

        Args:
          command: The command line.
        """
        started.set()
        await asyncio.sleep(60)
        return {"status": "ok"}

    fake_gemini.play(*g.stop_mid_command(after_stop="Stopped as you asked."))
    runner = make_runner(gemini(), execute_bash)
    stop = asyncio.Event()

    async def press_stop() -> None:
        await started.wait()
        stop.set()

    began = time.monotonic()
    presser = asyncio.create_task(press_stop())
    stopped = await play(runner, "Run the long job", abort_signal=stop)
    await presser
    assert time.monotonic() - began < 5  # the command would take 60 s
    assert stopped.calls == [("execute_bash", {"command": "sleep 600"})]

    after = await play(runner, "Never mind, say something")

    assert after.answer == "Stopped as you asked."
    # The history ADK sends after a Stop: the call is answered by ADK's abort error.
    history = contents(fake_gemini.model_requests[1])
    assert [c["role"] for c in history] == ["user", "model", "user", "user"]
    assert history[2]["parts"][0]["functionResponse"]["response"] == {
        "error": "Invocation was aborted by client."
    }
    assert [v.rule for v in fake_gemini.violations] == ["role"]  # user, user: not alternating
    assert fake_gemini.rejections == []
    fake_gemini.assert_clean(allow={"role"})


async def test_gemini_stop_mid_stream_drops_the_connection(fake_gemini, make_runner):
    words = " ".join(f"word{i}" for i in range(40))
    fake_gemini.play(g.text(words, pieces=40, delay_s=0.05))
    runner = make_runner(gemini())
    stop = asyncio.Event()
    turn = Turn()

    began = time.monotonic()
    async for event in runner.run_async(
        user_id="user",
        session_id="chat",
        new_message=types.Content(role="user", parts=[types.Part(text="Talk a lot")]),
        run_config=RunConfig(streaming_mode=StreamingMode.SSE),
        abort_signal=stop,
    ):
        turn.events.append(event)
        stop.set()  # Stop as soon as the first piece shows

    assert time.monotonic() - began < 1.5  # the whole stream would take 2 s
    assert 1 <= len(turn.partial_texts) < 40
    for _ in range(100):  # the server notices when its next write fails
        if fake_gemini.model_requests[0].disconnected:
            break
        await asyncio.sleep(0.05)
    assert fake_gemini.model_requests[0].disconnected
    fake_gemini.assert_clean()


async def test_gemini_models_list_checks_the_key(fake_gemini, monkeypatch):
    client = Client()
    names = [m.name async for m in await client.aio.models.list()]
    await client.aio.aclose()
    assert "models/gemini-2.5-flash" in names
    assert fake_gemini.requests[0].headers["x-goog-api-key"] == "fake"

    monkeypatch.setenv("GOOGLE_API_KEY", "wrong")
    client = Client()
    with pytest.raises(errors.ClientError) as raised:
        await client.aio.models.list()
    await client.aio.aclose()
    assert (raised.value.code, raised.value.status) == (400, "INVALID_ARGUMENT")
    assert raised.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"

    with pytest.raises(urllib.error.HTTPError) as no_key:
        await asyncio.to_thread(urllib.request.urlopen, f"{fake_gemini.url}/v1beta/models")
    assert no_key.value.code == 403
    assert json.loads(no_key.value.read())["error"]["status"] == "PERMISSION_DENIED"


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"x-goog-api-key": "fake", "Authorization": "Bearer fake"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [
        (
            {
                "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                "tools": [
                    {
                        "functionDeclarations": [
                            {
                                "name": "f",
                                "parameters": {"type": "OBJECT", "additionalProperties": False},
                            }
                        ]
                    }
                ],
            },
            'Unknown name "additionalProperties"',
        ),
        (
            {
                "contents": [
                    {"role": "user", "parts": [{"text": "hi"}]},
                    {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
                    {"role": "user", "parts": [{"text": "and?"}]},
                ]
            },
            "number of function response parts is equal",
        ),
        ({"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]}, "valid role"),
        ({"contents": [{"role": "user", "parts": []}]}, "parts must not be empty"),
    ],
)
def test_gemini_fake_refuses_what_the_real_api_refuses(request_body, expected):
    with g.FakeGemini() as fake:
        fake.play(g.text("never sent"))
        status, body = post(
            f"{fake.url}/v1beta/models/gemini-2.5-flash:generateContent", request_body
        )
    assert status == 400
    assert body["error"]["status"] == "INVALID_ARGUMENT"
    assert expected in body["error"]["message"]
    assert fake.violations
    assert fake.script.remaining == 1


def test_gemini_fake_refuses_a_call_replayed_without_its_signature_on_gemini_3():
    url = "{}/v1beta/models/gemini-3-flash-preview:generateContent"
    ask = {"role": "user", "parts": [{"text": "hi"}]}
    with g.FakeGemini() as fake:
        fake.play(g.call("f", {"x": 1}), g.text("never sent"))
        _, first = post(url.format(fake.url), {"contents": [ask]})
        [part] = first["candidates"][0]["content"]["parts"]
        assert part["thoughtSignature"]
        answer = {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}
        unsigned = {"role": "model", "parts": [{"functionCall": part["functionCall"]}]}
        status, body = post(url.format(fake.url), {"contents": [ask, unsigned, answer]})
    assert status == 400
    assert "missing a thought_signature" in body["error"]["message"]
    assert [v.rule for v in fake.rejections] == ["thought_signature"]


def test_gemini_fake_starts_fast_and_stops_cleanly():
    began = time.monotonic()
    fake = g.FakeGemini().start()
    assert time.monotonic() - began < 1
    status, _ = post(
        f"{fake.url}/v1beta/models/gemini-2.5-flash:generateContent",
        {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    )
    assert status == 500  # nothing scripted: a server error, and a violation to fail the test
    assert [v.rule for v in fake.violations] == ["script"]
    url = fake.url
    fake.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/v1beta/models", timeout=2)


# --------------------------------------------------------------------------------------------
# LiteLLM (ADK's LiteLlm -> litellm -> openai SDK) against the OpenAI-compatible fake


def lite(fake: o.FakeOpenAI, **kwargs):
    from google.adk.models.lite_llm import LiteLlm

    return LiteLlm(model="openai/fake-model", api_base=fake.api_base, api_key="fake", **kwargs)


def tool_messages(request) -> list[dict]:
    return [m for m in request.json["messages"] if m["role"] == "tool"]


async def test_litellm_tool_call_round_trip(fake_openai, make_runner):
    fake_openai.play(*o.one_tool_call("get_weather", {"city": "Paris"}, "Sunny in Paris today."))
    runner = make_runner(lite(fake_openai), get_weather)

    turn = await play(runner, "Weather in Paris?")

    assert turn.calls == [("get_weather", {"city": "Paris"})]
    assert turn.responses == [SUNNY]
    assert turn.answer == "Sunny in Paris today."
    first, second = fake_openai.model_requests
    assert first.json["stream"] is True
    assert first.headers["authorization"] == "Bearer fake"
    assert [t["function"]["name"] for t in first.json["tools"]] == ["get_weather"]
    [assistant] = [m for m in second.json["messages"] if m.get("tool_calls")]
    [answer] = tool_messages(second)
    assert answer["tool_call_id"] == assistant["tool_calls"][0]["id"]
    assert json.loads(answer["content"]) == SUNNY
    fake_openai.assert_clean()


async def test_litellm_without_streaming(fake_openai, make_runner):
    fake_openai.play(*o.one_tool_call("get_weather", {"city": "Paris"}, "Sunny in Paris today."))
    runner = make_runner(lite(fake_openai), get_weather)

    turn = await play(runner, "Weather in Paris?", streaming=StreamingMode.NONE)

    assert turn.answer == "Sunny in Paris today."
    assert all(not r.json.get("stream") for r in fake_openai.model_requests)
    fake_openai.assert_clean()


async def test_litellm_parallel_calls(fake_openai, make_runner):
    calls = [o.ToolCall("get_weather", {"city": c}) for c in ("Paris", "Rome")]
    fake_openai.play(*o.parallel_tool_calls(calls, "Sunny in both."))
    runner = make_runner(lite(fake_openai), get_weather)

    turn = await play(runner, "Weather in Paris and Rome?")

    assert turn.calls == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]
    assert [json.loads(m["content"])["city"] for m in tool_messages(fake_openai.requests[1])] == [
        "Paris",
        "Rome",
    ]
    assert turn.answer == "Sunny in both."
    fake_openai.assert_clean()


async def test_litellm_text_then_call_across_chunks(fake_openai, make_runner):
    fake_openai.play(
        o.text_then_call("Let me look.", "get_weather", {"city": "Paris"}), o.text("Sunny.")
    )
    runner = make_runner(lite(fake_openai), get_weather)

    turn = await play(runner, "Weather in Paris?")

    assert turn.calls == [("get_weather", {"city": "Paris"})]
    assert turn.answer == "Sunny."
    [assistant] = [m for m in fake_openai.requests[1].json["messages"] if m.get("tool_calls")]
    assert assistant["content"] == "Let me look."
    fake_openai.assert_clean()


async def test_litellm_429_is_retried_by_the_openai_sdk(fake_openai, make_runner):
    fake_openai.play(*o.after_rate_limit(o.text("Here it is.")))
    runner = make_runner(lite(fake_openai, num_retries=2))

    turn = await play(runner, "Hello")

    assert turn.answer == "Here it is."
    first, second = fake_openai.model_requests
    assert second.headers["x-stainless-retry-count"] == "1"
    assert 0.3 < second.received_at - first.received_at < 2  # openai SDK backoff: 0.375-0.5 s
    fake_openai.assert_clean()


async def test_litellm_429_with_no_retries_raises_rate_limit_error(fake_openai, make_runner):
    import litellm

    fake_openai.play(o.rate_limited())
    runner = make_runner(lite(fake_openai, num_retries=0))
    turn = Turn()

    with pytest.raises(litellm.RateLimitError) as raised:
        await play(runner, "Hello", turn)

    [(code, message)] = turn.errors
    assert code == "RateLimitError"
    assert message.startswith(
        "litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit"
    )
    assert raised.value.status_code == 429
    fake_openai.assert_clean()


async def test_litellm_400_raises_bad_request(fake_openai, make_runner):
    import litellm

    fake_openai.play(o.invalid_request("bad thing"))
    runner = make_runner(lite(fake_openai))
    turn = Turn()

    with pytest.raises(litellm.BadRequestError):
        await play(runner, "Hello", turn)

    assert turn.errors == [
        ("BadRequestError", "litellm.BadRequestError: OpenAIException - bad thing")
    ]
    assert len(fake_openai.model_requests) == 1
    fake_openai.assert_clean()


async def test_litellm_retry_after_header_sets_the_delay(fake_openai, make_runner):
    fake_openai.play(o.rate_limited(retry_after_ms=20), o.unavailable(), o.text("Here it is."))
    runner = make_runner(lite(fake_openai))  # no num_retries: the openai SDK's default, 2

    turn = await play(runner, "Hello")

    assert turn.answer == "Here it is."
    first, second, _ = fake_openai.model_requests
    assert second.received_at - first.received_at < 0.3
    fake_openai.assert_clean()


async def test_litellm_401_raises_authentication_error(fake_openai, make_runner):
    import litellm
    from google.adk.models.lite_llm import LiteLlm

    model = LiteLlm(model="openai/fake-model", api_base=fake_openai.api_base, api_key="wrong")
    runner = make_runner(model)
    turn = Turn()

    with pytest.raises(litellm.AuthenticationError):
        await play(runner, "Hello", turn)

    [(code, message)] = turn.errors
    assert code == "AuthenticationError"
    assert "Incorrect API key provided" in message
    assert fake_openai.script.remaining == 0
    assert fake_openai.violations == []


@pytest.mark.parametrize(
    ("streaming", "expected"),
    [
        (
            StreamingMode.SSE,
            (
                "MALFORMED_FUNCTION_CALL",
                "A tool call's arguments could not be parsed as valid JSON. The stream carrying "
                "them most likely ended early.",
            ),
        ),
        (
            StreamingMode.NONE,
            (
                "MALFORMED_FUNCTION_CALL",
                "Arguments for the following function calls were not a valid JSON object: "
                "get_weather",
            ),
        ),
    ],
)
async def test_litellm_malformed_call_is_an_error_event(
    fake_openai, make_runner, streaming, expected
):
    fake_openai.play(o.malformed_call("get_weather"))
    runner = make_runner(lite(fake_openai), get_weather)

    turn = await play(runner, "Weather in Paris?", streaming=streaming)

    assert turn.errors == [expected]  # error_code is a str, or a FinishReason (a str enum)
    assert turn.calls == []
    fake_openai.assert_clean()


async def test_litellm_empty_reply(fake_openai, make_runner):
    fake_openai.play(o.empty(), o.empty())
    runner = make_runner(lite(fake_openai))

    streamed = await play(runner, "Hello")
    unstreamed = await play(runner, "Hello?", streaming=StreamingMode.NONE)

    # Streaming: one final event with no text and no error; without streaming an error event.
    assert [(e.partial, e.error_code) for e in streamed.events] == [(False, None)]
    assert streamed.answer == ""
    assert unstreamed.errors == [
        (
            "MODEL_RETURNED_NO_CONTENT",
            "The model returned no content (finish_reason=STOP with empty parts).",
        )
    ]
    fake_openai.assert_clean()


async def test_litellm_base_url_from_the_environment(fake_openai, make_runner, monkeypatch):
    from google.adk.models.lite_llm import LiteLlm

    for name, value in fake_openai.env().items():
        monkeypatch.setenv(name, value)
    fake_openai.play(o.text("Hi there."))
    runner = make_runner(LiteLlm(model="openai/fake-model"))

    turn = await play(runner, "Hello")

    assert turn.answer == "Hi there."
    fake_openai.assert_clean()


def test_openai_fake_refuses_unanswered_tool_calls():
    with o.FakeOpenAI() as fake:
        fake.play(o.text("never sent"))
        status, body = post(
            f"{fake.url}/v1/chat/completions",
            {
                "model": "fake-model",
                "messages": [
                    {"role": "user", "content": "hi"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{}"},
                            }
                        ],
                    },
                    {"role": "user", "content": "and?"},
                ],
            },
        )
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert "call_1" in body["error"]["message"]
    assert fake.script.remaining == 1
