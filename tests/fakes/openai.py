"""A fake OpenAI-compatible chat completions server on loopback, for the app's LiteLLM path.

Point LiteLLM at it with `LiteLlm(model="openai/<name>", api_base=f"{fake.url}/v1",
api_key="fake")` (or `OPENAI_API_BASE`/`OPENAI_BASE_URL` + `OPENAI_API_KEY`, see `env()`):

- `POST /v1/chat/completions`: streaming (`data: {chunk}` events with `choices[].delta`: the role,
  content pieces, `tool_calls` deltas whose arguments arrive over several events, the finish
  reason, a usage chunk when `stream_options.include_usage`, then `data: [DONE]`) or one JSON
  `chat.completion`.
- `GET /v1/models`: the models list.
- Errors with the real body `{"error": {"message", "type", "param", "code"}}`.

Requests are checked like the real API checks them (roles, `tool_call_id` pairing, tool schemas)
into `violations`; those the real API refuses get its 400 here too.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._http import ApiError, FakeApiServer, HttpResponse, RecordedRequest, split_text, sse_events

# --------------------------------------------------------------------------------------------
# Script vocabulary


@dataclass(frozen=True)
class ToolCall:
    """A call the fake model makes. `arguments` as a dict (sent as JSON) or a raw string (which
    may be broken JSON on purpose). `id` defaults to a fresh `call_...`."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class ChatReply:
    """One assistant answer: content pieces (one delta each) and tool calls (arguments streamed
    over `argument_pieces` deltas each)."""

    content: tuple[str, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None  # default: "tool_calls" with calls, else "stop"
    argument_pieces: int = 3
    delay_s: float = 0.0  # between SSE events


Step = ChatReply | ApiError | Callable[[RecordedRequest], "ChatReply | ApiError"]


def text(answer: str, *, pieces: int = 3, delay_s: float = 0.0) -> ChatReply:
    return ChatReply(tuple(split_text(answer, pieces)), delay_s=delay_s)


def call(name: str, arguments: Mapping[str, Any] | str | None = None) -> ChatReply:
    return ChatReply(tool_calls=(ToolCall(name, arguments if arguments is not None else {}),))


def parallel_calls(*calls: ToolCall) -> ChatReply:
    return ChatReply(tool_calls=tuple(calls))


def text_then_call(preamble: str, name: str, arguments: Mapping[str, Any] | None = None):
    return ChatReply(tuple(split_text(preamble, 2)), (ToolCall(name, arguments or {}),))


def malformed_call(name: str, broken_arguments: str = '{"city": "Par') -> ChatReply:
    """A tool call whose arguments are not valid JSON (a cut-off stream, a sloppy model)."""
    return ChatReply(tool_calls=(ToolCall(name, broken_arguments),))


def empty() -> ChatReply:
    """No content and no calls; finish_reason stop."""
    return ChatReply()


def api_error(status: int, message: str, type_: str, code: str | None, param: str | None = None):
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return ApiError(status, body)


def rate_limited(retry_after_ms: int | None = None) -> ApiError:
    """429; with `retry_after_ms` the `retry-after-ms` header the openai SDK obeys (<= 120 s)."""
    error = api_error(
        429,
        "Rate limit reached for fake-model in organization org-fake on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1. Please try again in 20s. Visit "
        "https://platform.openai.com/account/rate-limits to learn more.",
        "requests",
        "rate_limit_exceeded",
    )
    if retry_after_ms is None:
        return error
    return ApiError(error.status, error.body, (("retry-after-ms", str(retry_after_ms)),))


def unavailable() -> ApiError:
    return api_error(
        503, "The server is overloaded or not ready yet.", "server_error", "service_unavailable"
    )


def invalid_request(message: str = "Invalid request.", param: str | None = None) -> ApiError:
    return api_error(400, message, "invalid_request_error", None, param)


def key_invalid(key: str = "") -> ApiError:
    shown = f"{key[:3]}***{key[-3:]}" if len(key) > 6 else key
    return api_error(
        401,
        f"Incorrect API key provided: {shown}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        "invalid_api_key",
    )


def one_tool_call(name: str, arguments: Mapping[str, Any], answer: str) -> list[Step]:
    return [call(name, arguments), text(answer)]


def parallel_tool_calls(calls: Iterable[ToolCall], answer: str) -> list[Step]:
    return [parallel_calls(*calls), text(answer)]


def after_rate_limit(*steps: Step, times: int = 1) -> list[Step]:
    return [*(rate_limited() for _ in range(times)), *steps]


def after_unavailable(*steps: Step, times: int = 1) -> list[Step]:
    return [*(unavailable() for _ in range(times)), *steps]


# --------------------------------------------------------------------------------------------
# What the real API accepts

_PARAMS = {
    "model",
    "messages",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "n",
    "stop",
    "max_tokens",
    "max_completion_tokens",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "user",
    "seed",
    "response_format",
    "reasoning_effort",
    "metadata",
    "store",
    "service_tier",
    "modalities",
    "audio",
    "prediction",
    "web_search_options",
    "functions",
    "function_call",
    "verbosity",
    "safety_identifier",
    "prompt_cache_key",
}
_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class FakeOpenAI(FakeApiServer[ChatReply]):
    """The fake server. `api_keys`: bearer keys it accepts (others get 401 invalid_api_key)."""

    def __init__(
        self,
        *,
        api_keys: Collection[str] = ("fake",),
        models: Collection[str] = ("fake-model",),
        reject_invalid: bool = True,
    ) -> None:
        super().__init__()
        self.api_keys = set(api_keys)
        self.models = tuple(models)
        self.reject_invalid = reject_invalid

    @property
    def model_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/v1/chat/completions"]

    @property
    def api_base(self) -> str:
        """What LiteLLM's `api_base` (and OPENAI_API_BASE) must be: the URL with `/v1`."""
        return f"{self.url}/v1"

    displaced_env = ("OPENAI_BASE_URL",)

    def env(self, api_key: str = "fake") -> dict[str, str]:
        """Environment that points LiteLLM's `openai/` provider here (no kwargs needed)."""
        return {"OPENAI_API_BASE": self.api_base, "OPENAI_API_KEY": api_key}

    # -- HTTP ------------------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> HttpResponse:
        auth = self._auth_error(request)
        if auth:
            return _error(auth)
        if request.method == "GET" and request.path.rstrip("/") == "/v1/models":
            return HttpResponse.json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "fake"}
                        for m in self.models
                    ],
                },
            )
        if request.method != "POST" or request.path != "/v1/chat/completions":
            return _error(
                api_error(
                    404,
                    f"Invalid URL ({request.method} {request.path})",
                    "invalid_request_error",
                    None,
                )
            )
        refusals = self._validate(request)
        if refusals and self.reject_invalid:
            return _error(refusals[0])
        body = request.json if isinstance(request.json, dict) else {}
        if body.get("model") not in self.models:
            return _error(
                api_error(
                    404,
                    f"The model `{body.get('model')}` does not exist or you do not have access "
                    "to it.",
                    "invalid_request_error",
                    "model_not_found",
                )
            )
        step = self.script.take(request)
        if step is None:
            self.violate(
                request, "script", "a model request after the script ended", rejected=False
            )
            return _error(
                api_error(500, "Fake OpenAI: the script has no step left.", "server_error", None)
            )
        if isinstance(step, ApiError):
            return _error(step)
        return self._reply(step, body)

    def _auth_error(self, request: RecordedRequest) -> ApiError | None:
        header = request.headers.get("authorization", "")
        key = header.removeprefix("Bearer ").strip()
        if not header.startswith("Bearer ") or not key:
            return api_error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error",
                None,
            )
        return None if key in self.api_keys else key_invalid(key)

    # -- replies ---------------------------------------------------------------------------

    def _reply(self, reply: ChatReply, body: dict) -> HttpResponse:
        completion_id = "chatcmpl-" + secrets.token_urlsafe(21)
        created = int(time.time())
        model = body.get("model")
        calls = [
            (
                tc.id or "call_" + secrets.token_urlsafe(18),
                tc.name,
                tc.arguments if isinstance(tc.arguments, str) else json.dumps(tc.arguments),
            )
            for tc in reply.tool_calls
        ]
        finish = reply.finish_reason or ("tool_calls" if calls else "stop")
        prompt_tokens = max(1, len(json.dumps(body.get("messages"))) // 4)
        completion_tokens = max(
            1, (len("".join(reply.content)) + sum(len(c[2]) for c in calls)) // 4
        )
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        base = {
            "id": completion_id,
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
        }
        if not body.get("stream"):
            message: dict[str, Any] = {
                "role": "assistant",
                "content": "".join(reply.content) or None,
                "refusal": None,
            }
            if calls:
                message["tool_calls"] = [
                    {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                    for i, n, a in calls
                ]
            return HttpResponse.json(
                200,
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
                    ],
                    "usage": usage,
                },
            )

        def chunk(delta: dict, finish_reason: str | None = None) -> dict:
            return {
                **base,
                "object": "chat.completion.chunk",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }

        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        events += [chunk({"content": piece}) for piece in reply.content]
        for index, (call_id, name, arguments) in enumerate(calls):
            events.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": call_id,
                                "type": "function",
                                "function": {"name": name, "arguments": ""},
                            }
                        ]
                    }
                )
            )
            for piece in _cut(arguments, reply.argument_pieces):
                events.append(
                    chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                )
        events.append(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(
                {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            )
        return HttpResponse(
            200,
            sse_events(events, done=True),
            content_type="text/event-stream",
            delay_s=reply.delay_s,
        )

    # -- validation ------------------------------------------------------------------------

    def _validate(self, request: RecordedRequest) -> list[ApiError]:
        refusals: list[ApiError] = []

        def bad(rule: str, message: str, param: str | None = None, *, rejected: bool = True):
            self.violate(request, rule, message, rejected=rejected)
            if rejected:
                refusals.append(invalid_request(message, param))

        body = request.json
        if not isinstance(body, dict):
            bad("json", "We could not parse the JSON body of your request.")
            return refusals
        for key in sorted(body.keys() - _PARAMS):
            bad("param", f"Unrecognized request argument supplied: {key}", key)
        if not body.get("model"):
            bad("param", "you must provide a model parameter", "model")
        if "stream_options" in body and not body.get("stream"):
            bad(
                "param",
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                "stream_options",
            )
        self._check_messages(body.get("messages"), bad)
        self._check_tools(body.get("tools"), bad)
        return refusals

    @staticmethod
    def _check_messages(messages: Any, bad) -> None:
        if not isinstance(messages, list) or not messages:
            bad("messages", "[] is too short - 'messages'", "messages")
            return
        pending: list[str] = []  # tool_call ids still waiting for a tool message
        answered_turn = False  # inside the tool messages after an assistant tool_calls message
        for i, message in enumerate(messages):
            where = f"messages[{i}]"
            if not isinstance(message, dict):
                bad("messages", f"Invalid type for '{where}': expected an object.", where)
                continue
            role = message.get("role")
            if role not in _ROLES:
                bad(
                    "role",
                    f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', "
                    "'user', 'function', 'tool', and 'developer'.",
                    f"{where}.role",
                )
            if role != "tool" and pending:
                bad(
                    "pairing",
                    "An assistant message with 'tool_calls' must be followed by tool messages "
                    "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                    f"response messages: {', '.join(pending)}",
                    "messages",
                )
                pending = []
            if role != "tool":
                answered_turn = False
            content = message.get("content")
            if role == "tool":
                call_id = message.get("tool_call_id")
                if not call_id:
                    bad("pairing", f"Missing required parameter: '{where}.tool_call_id'.", where)
                elif call_id in pending:
                    pending.remove(call_id)
                elif not answered_turn:
                    bad(
                        "pairing",
                        "Invalid parameter: messages with role 'tool' must be a response to a "
                        "preceeding message with 'tool_calls'.",
                        f"{where}.role",
                    )
                else:
                    bad(
                        "pairing",
                        f"{where}: tool_call_id {call_id!r} answers no call of the assistant "
                        "message",
                        f"{where}.tool_call_id",
                    )
                if not isinstance(content, str | list):
                    bad("messages", f"Invalid type for '{where}.content'.", f"{where}.content")
            elif role == "assistant":
                calls = message.get("tool_calls") or []
                if not calls and content in (None, "", []):
                    bad(
                        "messages",
                        f"Invalid value for '{where}': an assistant message needs 'content' or "
                        "'tool_calls'.",
                        where,
                    )
                for j, tc in enumerate(calls):
                    at = f"{where}.tool_calls[{j}]"
                    if not isinstance(tc, dict):
                        bad("messages", f"Invalid type for '{at}': expected an object.", at)
                        continue
                    function = tc.get("function") or {}
                    if not tc.get("id"):
                        bad("messages", f"Missing required parameter: '{at}.id'.", at)
                    if tc.get("type") != "function":
                        bad("messages", f"Missing required parameter: '{at}.type'.", at)
                    if not function.get("name"):
                        bad("messages", f"Missing required parameter: '{at}.function.name'.", at)
                    if not isinstance(function.get("arguments"), str):
                        bad(
                            "messages",
                            f"Invalid type for '{at}.function.arguments': expected a string.",
                            f"{at}.function.arguments",
                        )
                    if tc.get("id"):
                        pending.append(tc["id"])
                answered_turn = bool(calls)
            elif role in {"system", "developer", "user"} and not isinstance(content, str | list):
                bad("messages", f"Invalid type for '{where}.content'.", f"{where}.content")
        if pending:
            bad(
                "pairing",
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(pending)}",
                "messages",
            )

    @staticmethod
    def _check_tools(tools: Any, bad) -> None:
        if tools is None:
            return
        if not isinstance(tools, list):
            bad("tools", "Invalid type for 'tools': expected an array.", "tools")
            return
        names: set[str] = set()
        for i, tool in enumerate(tools):
            where = f"tools[{i}]"
            if not isinstance(tool, dict):
                bad("tools", f"Invalid type for '{where}': expected an object.", where)
                continue
            if tool.get("type") != "function":
                bad("tools", f"Missing required parameter: '{where}.type'.", f"{where}.type")
            function = tool.get("function") or {}
            name = function.get("name", "")
            if not _TOOL_NAME.match(name):
                bad(
                    "tools",
                    f"Invalid '{where}.function.name': string does not match pattern. Expected a "
                    "string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                    f"{where}.function.name",
                )
            if name in names:
                bad("tools", f"{where}: duplicate function name {name!r}", rejected=False)
            names.add(name)
            parameters = function.get("parameters")
            if parameters is not None and (
                not isinstance(parameters, dict) or parameters.get("type") != "object"
            ):
                kind = parameters.get("type") if isinstance(parameters, dict) else None
                bad(
                    "tools",
                    f"Invalid schema for function '{name}': schema must be a JSON Schema of "
                    f"'type: \"object\"', got 'type: \"{kind}\"'.",
                    f"{where}.function.parameters",
                )


def _cut(text: str, pieces: int) -> list[str]:
    """`text` in `pieces` near-equal slices (JSON arguments arrive split anywhere)."""
    if not text:
        return [""]
    size = -(-len(text) // max(1, pieces))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _error(error: ApiError) -> HttpResponse:
    return HttpResponse.json(error.status, error.body, dict(error.headers))
