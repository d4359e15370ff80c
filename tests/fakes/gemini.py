"""A fake of the Gemini Developer API (v1beta) on loopback, for the app's real model path.

Point google-genai at it with `GOOGLE_GEMINI_BASE_URL=<fake.url>` and `GOOGLE_API_KEY=fake` (or
`Gemini(base_url=fake.url)`); ADK's `Gemini` model then sends its real requests here:

- `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent?alt=sse`, answered
  from a script with the real response shapes: `candidates[].content.parts` with `text` or
  `functionCall {name, args[, id]}` (+ `thoughtSignature` on the first call of a reply, as
  gemini-2.5 and later send it), `finishReason` (`STOP`, `MALFORMED_FUNCTION_CALL`, ...),
  `usageMetadata`, `modelVersion`, `responseId`; SSE as the real API streams it (text over several
  events, a call in its own event, the finish reason on the last one).
- `GET /v1beta/models`: the models list (what a doctor check calls with the key).
- Errors with the real body `{"error": {"code", "message", "status"[, "details"]}}`.

Every request is checked against what the real API accepts (`violations`); a request the real API
would refuse gets the real API's 400 here too (`reject_invalid=True`). Each request is recorded
with its raw size.

    with FakeGemini() as fake:
        fake.play(call("get_time", {"city": "Paris"}), text("It is noon."))
        ... run the agent ...
        fake.assert_clean()
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._http import (
    ApiError,
    FakeApiServer,
    HttpResponse,
    RecordedRequest,
    split_text,
    sse_events,
)

DEFAULT_MODELS = (
    "gemini-2.5-flash",
    "gemini-2.5-pro",
    "gemini-2.5-flash-lite",
    "gemini-3-flash-preview",
)

# --------------------------------------------------------------------------------------------
# Script vocabulary


@dataclass(frozen=True)
class FunctionCall:
    """A call the fake model makes. `id` is sent only when given (gemini-2.5 sends none)."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None


Part = str | FunctionCall  # text, or a function call


@dataclass(frozen=True)
class Reply:
    """One model answer. `chunks`: the SSE events, each a list of parts; a non-streaming request
    gets all parts in one candidate (adjacent text merged, as the real API does)."""

    chunks: tuple[tuple[Part, ...], ...] = ()
    finish_reason: str = "STOP"
    finish_message: str | None = None
    signatures: bool = True  # thoughtSignature on the first function call, as the real API
    delay_s: float = 0.0  # between SSE events (lets a test press Stop mid-stream)


Step = Reply | ApiError | Callable[[RecordedRequest], "Reply | ApiError"]


def text(answer: str, *, pieces: int = 3, delay_s: float = 0.0) -> Reply:
    """A text answer streamed over `pieces` events (cut at word boundaries)."""
    return Reply(tuple((p,) for p in split_text(answer, pieces)), delay_s=delay_s)


def call(name: str, args: Mapping[str, Any] | None = None, *, id: str | None = None) -> Reply:
    """One function call, alone in its event."""
    return Reply(((FunctionCall(name, dict(args or {}), id),),))


def parallel_calls(*calls: FunctionCall) -> Reply:
    """Several calls in one model turn (the real API sends them in one event)."""
    return Reply((tuple(calls),))


def text_then_call(
    preamble: str, name: str, args: Mapping[str, Any] | None = None, *, pieces: int = 2
) -> Reply:
    """Text over `pieces` events, then a call in a later event of the same turn."""
    chunks = tuple((p,) for p in split_text(preamble, pieces))
    return Reply((*chunks, (FunctionCall(name, dict(args or {})),)))


def malformed_call(message: str = "Malformed function call: print(default_api.run(") -> Reply:
    """The model produced an unparsable call: no parts, finishReason MALFORMED_FUNCTION_CALL."""
    return Reply((), finish_reason="MALFORMED_FUNCTION_CALL", finish_message=message)


def empty() -> Reply:
    """An answer with no parts at all (content has only its role), finishReason STOP."""
    return Reply(())


def api_error(status: int, message: str, code_status: str, details: list | None = None):
    error: dict[str, Any] = {"code": status, "message": message, "status": code_status}
    if details:
        error["details"] = details
    return ApiError(status, {"error": error})


def rate_limited(retry_delay_s: float = 7) -> ApiError:
    """429 RESOURCE_EXHAUSTED with the quota details the real API attaches (the message says
    the exact wait, e.g. "Please retry in 7.3s."; RetryInfo has it in whole seconds)."""
    return api_error(
        429,
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. "
        "To monitor your current usage, head to: https://ai.dev/usage?tab=rate-limit. \n* Quota "
        "exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_"
        f"requests, limit: 10\nPlease retry in {retry_delay_s:g}s.",
        "RESOURCE_EXHAUSTED",
        [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/"
                        "generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
                        "quotaValue": "10",
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": f"{int(retry_delay_s)}s",
            },
        ],
    )


def unavailable() -> ApiError:
    """503 UNAVAILABLE, what an overloaded model answers."""
    return api_error(503, "The model is overloaded. Please try again later.", "UNAVAILABLE")


def invalid_argument(message: str = "Request contains an invalid argument.") -> ApiError:
    """400 INVALID_ARGUMENT."""
    return api_error(400, message, "INVALID_ARGUMENT")


_KEY_INVALID = "API key not valid. Please pass a valid API key."


def key_invalid() -> ApiError:
    """400 API_KEY_INVALID: what every endpoint answers for a wrong key."""
    return api_error(
        400,
        _KEY_INVALID,
        "INVALID_ARGUMENT",
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": _KEY_INVALID,
            },
        ],
    )


def key_missing() -> ApiError:
    """403 PERMISSION_DENIED: no key at all."""
    return api_error(
        403,
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API.",
        "PERMISSION_DENIED",
    )


# Scenarios the model tier plays (each a list of steps for `fake.play(*steps)`).


def one_tool_call(name: str, args: Mapping[str, Any], answer: str) -> list[Step]:
    return [call(name, args), text(answer)]


def parallel_tool_calls(calls: Iterable[FunctionCall], answer: str) -> list[Step]:
    return [parallel_calls(*calls), text(answer)]


def text_then_tool_call(preamble: str, name: str, args: Mapping[str, Any], answer: str):
    return [text_then_call(preamble, name, args), text(answer)]


def stop_mid_command(
    name: str = "execute_bash", args: Mapping[str, Any] | None = None, after_stop: str = "Stopped."
) -> list[Step]:
    """A long command the test stops; then the answer to the user's next message."""
    return [call(name, args or {"command": "sleep 600"}), text(after_stop)]


def after_rate_limit(*steps: Step, times: int = 1) -> list[Step]:
    return [*(rate_limited() for _ in range(times)), *steps]


def after_unavailable(*steps: Step, times: int = 1) -> list[Step]:
    return [*(unavailable() for _ in range(times)), *steps]


# --------------------------------------------------------------------------------------------
# What the real API accepts (v1beta, Gemini Developer API)

_TOP_LEVEL = {
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "safetySettings",
    "generationConfig",
    "cachedContent",
    "serviceTier",
    "store",
}
_GENERATION_CONFIG = {
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "enableEnhancedCivicAnswers",
    "speechConfig",
    "thinkingConfig",
    "imageConfig",
    "mediaResolution",
}
_THINKING_CONFIG = {"includeThoughts", "thinkingBudget", "thinkingLevel"}
_PART_DATA = {
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
    "toolCall",
    "toolResponse",
}
_PART_META = {"thought", "thoughtSignature", "videoMetadata", "partMetadata", "mediaResolution"}
_FUNCTION_CALL = {"name", "args", "id"}
_FUNCTION_RESPONSE = {"name", "response", "id", "parts", "willContinue", "scheduling"}
_TOOL = {
    "functionDeclarations",
    "googleSearch",
    "googleSearchRetrieval",
    "codeExecution",
    "urlContext",
    "computerUse",
    "fileSearch",
    "googleMaps",
    "mcpServers",
}
_DECLARATION = {
    "name",
    "description",
    "parameters",
    "parametersJsonSchema",
    "response",
    "responseJsonSchema",
    "behavior",
}
# `parameters` is the proto `Schema` (an OpenAPI 3.0 subset): any other key is a 400
# ("Unknown name ... Cannot find field."), e.g. additionalProperties, $defs, $ref, $schema,
# const, exclusiveMinimum, propertyNames, uniqueItems.
_SCHEMA = {
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
}
_SCHEMA_TYPES = {"TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT"}
_SCHEMA_TYPES |= {"NULL"}
# `parametersJsonSchema` is free JSON; the documented JSON Schema subset the model honours.
# Other keywords are not refused but may be ignored: recorded in `warnings`, not `violations`.
_JSON_SCHEMA = {
    "$id",
    "$defs",
    "$ref",
    "$anchor",
    "type",
    "format",
    "title",
    "description",
    "enum",
    "items",
    "prefixItems",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "anyOf",
    "oneOf",
    "properties",
    "additionalProperties",
    "required",
    "propertyOrdering",
    "default",
}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
_MODEL_PATH = re.compile(r"^/v1beta/models/([^/:]+):(generateContent|streamGenerateContent)$")


def _unknown(path: str, name: str) -> str:
    return f"Invalid JSON payload received. Unknown name \"{name}\" at '{path}': Cannot find field."


class FakeGemini(FakeApiServer[Reply]):
    """The fake server. `api_keys`: keys it accepts (others get 400 API_KEY_INVALID, none 403)."""

    def __init__(
        self,
        *,
        api_keys: Collection[str] = ("fake",),
        models: Collection[str] = DEFAULT_MODELS,
        reject_invalid: bool = True,
    ) -> None:
        super().__init__()
        self.api_keys = set(api_keys)
        self.models = tuple(models)
        self.reject_invalid = reject_invalid
        self.warnings: list[str] = []
        self.issued_signatures: dict[str, set[str]] = {}  # call (name, args) -> signatures sent

    # -- inspection helpers ----------------------------------------------------------------

    @property
    def model_requests(self) -> list[RecordedRequest]:
        """The generateContent/streamGenerateContent requests, in order."""
        return [r for r in self.requests if _MODEL_PATH.match(r.path)]

    displaced_env = ("GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_VERTEX_BASE_URL")

    def env(self, api_key: str = "fake") -> dict[str, str]:
        """The environment that points google-genai at this fake."""
        return {"GOOGLE_GEMINI_BASE_URL": self.url, "GOOGLE_API_KEY": api_key}

    # -- HTTP ------------------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> HttpResponse:
        auth = self._auth_error(request)
        if request.method == "GET" and request.path.rstrip("/") == "/v1beta/models":
            return _error(auth) if auth else self._models_list(request)
        match = _MODEL_PATH.match(request.path)
        if request.method != "POST" or not match:
            return _error(api_error(404, f"Not found: {request.path}", "NOT_FOUND"))
        if auth:
            return _error(auth)
        model, method = match.groups()
        if model not in self.models:
            return _error(
                api_error(
                    404,
                    f"models/{model} is not found for API version v1beta, or is not supported "
                    "for generateContent. Call ListModels to see the list of available models "
                    "and their supported methods.",
                    "NOT_FOUND",
                )
            )
        stream = method == "streamGenerateContent"
        if stream and request.query.get("alt") != ["sse"]:
            self.violate(request, "alt", "stream without ?alt=sse (JSON array)", rejected=False)
        refusals = self._validate(request, model)
        if refusals and self.reject_invalid:
            return _error(invalid_argument("\n".join(refusals)))
        step = self.script.take(request)
        if step is None:
            self.violate(
                request, "script", "a model request after the script ended", rejected=False
            )
            return _error(api_error(500, "Fake Gemini: the script has no step left.", "INTERNAL"))
        if isinstance(step, ApiError):
            return _error(step)
        return self._reply(step, request, model, stream)

    def _auth_error(self, request: RecordedRequest) -> ApiError | None:
        key = request.headers.get("x-goog-api-key") or (request.query.get("key") or [None])[0]
        if not key:
            return key_missing()
        return None if key in self.api_keys else key_invalid()

    def _models_list(self, request: RecordedRequest) -> HttpResponse:
        return HttpResponse.json(
            200,
            {
                "models": [
                    {
                        "name": f"models/{m}",
                        "version": "001",
                        "displayName": m.replace("-", " ").title(),
                        "description": f"Fake {m}",
                        "inputTokenLimit": 1048576,
                        "outputTokenLimit": 65536,
                        "supportedGenerationMethods": [
                            "generateContent",
                            "countTokens",
                            "createCachedContent",
                            "batchGenerateContent",
                        ],
                        "temperature": 1,
                        "topP": 0.95,
                        "topK": 64,
                        "maxTemperature": 2,
                        "thinking": True,
                    }
                    for m in self.models
                ]
            },
        )

    # -- replies ---------------------------------------------------------------------------

    def _reply(self, reply: Reply, request: RecordedRequest, model: str, stream: bool):
        response_id = base64.urlsafe_b64encode(secrets.token_bytes(15)).decode()
        prompt_tokens = max(1, request.size // 4)
        signed = [not reply.signatures]  # the reply's first call carries the signature
        chunks = [self._wire_parts(c, signed) for c in reply.chunks]
        if stream:
            events = []
            chunks = chunks or [[]]
            for i, parts in enumerate(chunks):
                last = i == len(chunks) - 1
                events.append(
                    self._response(
                        parts, reply if last else None, model, response_id, prompt_tokens, last
                    )
                )
            return HttpResponse(
                200, sse_events(events), content_type="text/event-stream", delay_s=reply.delay_s
            )
        merged: list[dict] = []
        for part in (p for c in chunks for p in c):
            if "text" in part and merged and set(merged[-1]) == {"text"} and set(part) == {"text"}:
                merged[-1] = {"text": merged[-1]["text"] + part["text"]}
            else:
                merged.append(part)
        return HttpResponse.json(
            200, self._response(merged, reply, model, response_id, prompt_tokens, True)
        )

    def _wire_parts(self, parts: tuple[Part, ...], signed: list[bool]) -> list[dict]:
        out: list[dict] = []
        for part in parts:
            if isinstance(part, str):
                out.append({"text": part})
                continue
            fc: dict[str, Any] = {"name": part.name, "args": dict(part.args)}
            if part.id is not None:
                fc["id"] = part.id
            wire: dict[str, Any] = {"functionCall": fc}
            if not signed[0]:
                signature = base64.b64encode(secrets.token_bytes(48)).decode()
                wire["thoughtSignature"] = signature
                self.issued_signatures.setdefault(_call_key(fc), set()).add(signature)
                signed[0] = True
            out.append(wire)
        return out

    @staticmethod
    def _response(parts, finish: Reply | None, model, response_id, prompt_tokens, last) -> dict:
        content: dict[str, Any] = {"role": "model"}
        if parts:
            content = {"parts": parts, "role": "model"}
        candidate: dict[str, Any] = {"content": content}
        if finish is not None:
            if finish.finish_reason == "MALFORMED_FUNCTION_CALL":
                candidate["content"] = {}
            candidate["finishReason"] = finish.finish_reason
            if finish.finish_message:
                candidate["finishMessage"] = finish.finish_message
        candidate["index"] = 0
        out_tokens = sum(len(json.dumps(p)) for p in parts) // 4 + 1
        usage: dict[str, Any] = {
            "promptTokenCount": prompt_tokens,
            "totalTokenCount": prompt_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
        }
        if last:
            usage.update(
                candidatesTokenCount=out_tokens,
                thoughtsTokenCount=17,
                totalTokenCount=prompt_tokens + out_tokens + 17,
            )
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": response_id,
        }

    # -- validation ------------------------------------------------------------------------

    def _validate(self, request: RecordedRequest, model: str) -> list[str]:
        """Record every violation; return the messages of those the real API refuses."""
        refusals: list[str] = []

        def bad(rule: str, detail: str, *, rejected: bool = True) -> None:
            self.violate(request, rule, detail, rejected=rejected)
            if rejected:
                refusals.append(detail)

        body = _norm(request.json)
        if not isinstance(body, dict):
            bad("json", "Invalid JSON payload received.")
            return refusals
        for key in body.keys() - _TOP_LEVEL:
            bad("field", f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.')
        self._check_contents(body.get("contents"), bad, model)
        self._check_system_instruction(body.get("systemInstruction"), bad)
        self._check_tools(body.get("tools"), bad)
        self._check_generation_config(body.get("generationConfig"), bad)
        return refusals

    def _check_contents(self, contents: Any, bad, model: str) -> None:
        if not isinstance(contents, list) or not contents:
            bad("contents", "* GenerateContentRequest.contents: contents is not specified")
            return
        previous_role = None
        previous_calls: list[dict] = []
        for i, content in enumerate(contents):
            where = f"contents[{i}]"
            if not isinstance(content, dict):
                bad("contents", f"Invalid value at '{where}'")
                continue
            content = _norm(content)
            for key in content.keys() - {"role", "parts"}:
                bad("contents", _unknown(where, key))
            role = content.get("role")
            parts = content.get("parts")
            if role not in ("user", "model"):
                bad("role", f"Please use a valid role: user, model. ({where}.role={role!r})")
            if not isinstance(parts, list) or not parts:
                bad(
                    "parts",
                    f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty.",
                )
                parts = []
            if i == 0 and role != "user":
                bad(
                    "role", f"{where}: the conversation must start with a user turn", rejected=False
                )
            if role == previous_role:
                bad(
                    "role",
                    f"{where}: two {role!r} turns in a row (roles must alternate)",
                    rejected=False,
                )
            calls, responses = [], []
            for j, part in enumerate(parts):
                part = _norm(part)
                kind = self._check_part(part, f"{where}.parts[{j}]", bad)
                if kind == "functionCall":
                    calls.append(part)
                elif kind == "functionResponse":
                    responses.append(_norm(part["functionResponse"]))
            if calls and role != "model":
                bad("pairing", f"{where}: a functionCall in a {role!r} turn")
            if calls and previous_calls:
                bad(
                    "pairing",
                    "Please ensure that function call turn comes immediately after a user turn "
                    f"or after a function response turn. ({where})",
                )
            if responses and role != "user":
                bad("pairing", f"{where}: a functionResponse in a {role!r} turn")
            if previous_calls and not responses:
                bad(
                    "pairing",
                    "Please ensure that the number of function response parts is equal to the "
                    f"number of function call parts of the function call turn. ({where} answers "
                    f"{len(previous_calls)} call(s) with no function response)",
                )
            if responses:
                self._check_pairing(previous_calls, responses, where, bad)
            if calls and role == "model":
                self._check_signatures(calls, where, bad, model)
            previous_role, previous_calls = role, [_norm(c["functionCall"]) for c in calls]
        if previous_calls:
            bad("pairing", "the last turn is an unanswered function call", rejected=False)

    def _check_part(self, part: Any, where: str, bad) -> str | None:
        if not isinstance(part, dict):
            bad("part", f"Invalid value at '{where}'")
            return None
        for key in part.keys() - _PART_DATA - _PART_META:
            bad("part", _unknown(where, key))
        data = [k for k in part if k in _PART_DATA]
        if len(data) != 1:
            bad(
                "part",
                f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have "
                "one initialized field",
            )
            return None
        kind = data[0]
        if kind in ("functionCall", "functionResponse") and not isinstance(part[kind], dict):
            bad("part", f"Invalid value at '{where}.{kind}'")
            return None
        if kind == "text" and not isinstance(part["text"], str):
            bad("part", f"Invalid value at '{where}.text'")
        if kind == "functionCall":
            fc = _norm(part["functionCall"])
            for key in fc.keys() - _FUNCTION_CALL:
                bad("part", _unknown(f"{where}.function_call", key))
            if not fc.get("name"):
                bad("part", f"* {where}.function_call.name: Name cannot be empty.")
            if "args" in fc and not isinstance(fc["args"], dict):
                bad("part", f"Invalid value at '{where}.function_call.args' (Struct)")
        if kind == "functionResponse":
            fr = _norm(part["functionResponse"])
            for key in fr.keys() - _FUNCTION_RESPONSE:
                bad("part", _unknown(f"{where}.function_response", key))
            if not fr.get("name"):
                bad("part", f"* {where}.function_response.name: Name cannot be empty.")
            if not isinstance(fr.get("response"), dict):
                bad("part", f"Invalid value at '{where}.function_response.response' (Struct)")
        return kind

    @staticmethod
    def _check_pairing(calls: list[dict], responses: list[dict], where: str, bad) -> None:
        if not calls:
            bad(
                "pairing",
                "Please ensure that function response turn comes immediately after a function "
                f"call turn. ({where})",
            )
            return
        if len(calls) != len(responses):
            bad(
                "pairing",
                "Please ensure that the number of function response parts is equal to the number "
                f"of function call parts of the function call turn. ({where}: {len(calls)} calls, "
                f"{len(responses)} responses)",
            )
        call_ids = {c["id"] for c in calls if c.get("id")}
        unanswered = [c["name"] for c in calls]
        for fr in responses:
            if fr.get("id") and call_ids and fr["id"] not in call_ids:
                bad("pairing", f"{where}: response id {fr['id']!r} answers no call", rejected=False)
            if fr.get("name") in unanswered:
                unanswered.remove(fr["name"])
            else:
                bad(
                    "pairing",
                    f"{where}: response {fr.get('name')!r} answers no call of the previous turn",
                    rejected=False,
                )

    def _check_signatures(self, calls: list[dict], where: str, bad, model: str) -> None:
        """A call the fake signed must come back with its signature (gemini-3 refuses it)."""
        for part in calls:
            issued = self.issued_signatures.get(_call_key(part["functionCall"]))
            if issued is None or _same_signature(part.get("thoughtSignature"), issued):
                continue
            bad(
                "thought_signature",
                f"Function call is missing a thought_signature in functionCall parts. ({where}, "
                f"{part['functionCall'].get('name')!r})",
                rejected=model.startswith("gemini-3"),
            )

    @staticmethod
    def _check_system_instruction(instruction: Any, bad) -> None:
        if instruction is None:
            return
        instruction = _norm(instruction)
        if not isinstance(instruction, dict) or not isinstance(instruction.get("parts"), list):
            bad("systemInstruction", "Invalid value at 'system_instruction' (Content)")
            return
        for key in instruction.keys() - {"role", "parts"}:
            bad("systemInstruction", _unknown("system_instruction", key))
        for j, part in enumerate(instruction["parts"]):
            if not isinstance(part, dict) or set(part) != {"text"}:
                bad(
                    "systemInstruction",
                    f"system_instruction.parts[{j}]: only text parts are supported",
                )

    def _check_tools(self, tools: Any, bad) -> None:
        if tools is None:
            return
        if not isinstance(tools, list):
            bad("tools", "Invalid value at 'tools' (Tool)")
            return
        names: set[str] = set()
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                bad("tools", f"Invalid value at 'tools[{i}]' (Tool)")
                continue
            tool = _norm(tool)
            for key in tool.keys() - _TOOL:
                bad("tools", _unknown(f"tools[{i}]", key))
            for j, decl in enumerate(tool.get("functionDeclarations") or []):
                where = f"tools[{i}].function_declarations[{j}]"
                if not isinstance(decl, dict):
                    bad("tools", f"Invalid value at '{where}' (FunctionDeclaration)")
                    continue
                decl = _norm(decl)
                for key in decl.keys() - _DECLARATION:
                    bad("tools", _unknown(where, key))
                name = decl.get("name", "")
                if not _NAME.match(name):
                    bad(
                        "tools",
                        f"* GenerateContentRequest.{where}.name: Invalid function name. Must "
                        "start with a letter or an underscore. Must be a-z, A-Z, 0-9, or contain "
                        "underscores, dots, colons and dashes, with a maximum length of 64.",
                    )
                if name in names:
                    bad("tools", f"Duplicate function declaration found: {name}")
                names.add(name)
                if "parameters" in decl and "parametersJsonSchema" in decl:
                    bad(
                        "tools",
                        f"{where}: parameters and parameters_json_schema are mutually exclusive",
                    )
                if "parameters" in decl:
                    self._check_schema(decl["parameters"], f"{where}.parameters", bad)
                if "parametersJsonSchema" in decl:
                    schema = decl["parametersJsonSchema"]
                    if not isinstance(schema, dict) or schema.get("type") != "object":
                        bad(
                            "tools",
                            f"{where}.parameters_json_schema must describe an object",
                            rejected=False,
                        )
                    self._note_json_schema(schema, f"{where}.parameters_json_schema")

    def _check_schema(self, schema: Any, where: str, bad) -> None:
        if not isinstance(schema, dict):
            bad("schema", f"Invalid value at '{where}' (Schema)")
            return
        schema = _norm(schema)
        for key in schema.keys() - _SCHEMA:
            bad("schema", _unknown(where, key))
        kind = schema.get("type")
        if isinstance(kind, list):
            bad(
                "schema",
                f"Invalid JSON payload received. Unknown name \"type\" at '{where}': Proto field "
                "is not repeating, cannot start list.",
            )
        elif kind is not None and str(kind).upper() not in _SCHEMA_TYPES:
            bad("schema", f"Invalid value at '{where}.type' (type.googleapis.com/Type), {kind!r}")
        for name, sub in (schema.get("properties") or {}).items():
            self._check_schema(sub, f"{where}.properties[{name}].value", bad)
        if "items" in schema:
            self._check_schema(schema["items"], f"{where}.items", bad)
        for k, sub in enumerate(schema.get("anyOf") or []):
            self._check_schema(sub, f"{where}.any_of[{k}]", bad)
        for value in schema.get("enum") or []:
            if not isinstance(value, str):
                bad("schema", f"Invalid value at '{where}.enum' (TYPE_STRING), {value!r}")

    def _note_json_schema(self, schema: Any, where: str) -> None:
        if not isinstance(schema, dict):
            return
        for key in schema.keys() - _JSON_SCHEMA:
            self.warnings.append(f"{where}: {key!r} is outside the documented JSON Schema subset")
        for name, sub in (schema.get("properties") or {}).items():
            self._note_json_schema(sub, f"{where}.properties.{name}")
        for name, sub in (schema.get("$defs") or {}).items():
            self._note_json_schema(sub, f"{where}.$defs.{name}")
        if isinstance(schema.get("items"), dict):
            self._note_json_schema(schema["items"], f"{where}.items")
        if isinstance(schema.get("additionalProperties"), dict):
            self._note_json_schema(schema["additionalProperties"], f"{where}.additionalProperties")
        for key in ("anyOf", "oneOf", "prefixItems"):
            for k, sub in enumerate(schema.get(key) or []):
                self._note_json_schema(sub, f"{where}.{key}[{k}]")

    @staticmethod
    def _check_generation_config(config: Any, bad) -> None:
        if config is None:
            return
        if not isinstance(config, dict):
            bad("generationConfig", "Invalid value at 'generation_config'")
            return
        config = _norm(config)
        for key in config.keys() - _GENERATION_CONFIG:
            bad("generationConfig", _unknown("generation_config", key))
        for key in _norm(config.get("thinkingConfig") or {}).keys() - _THINKING_CONFIG:
            bad("generationConfig", _unknown("generation_config.thinking_config", key))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _norm(message: Any) -> Any:
    """A proto message's JSON with field names in lowerCamelCase: the real API parses proto field
    names (snake_case) too, and google-genai sends some that way (`parameters_json_schema`)."""
    if not isinstance(message, dict):
        return message
    return {_camel(k): v for k, v in message.items()}


def _same_signature(sent: Any, issued: set[str]) -> bool:
    """Signatures are proto `bytes`: base64 in either alphabet (genai echoes URL-safe)."""
    if not isinstance(sent, str):
        return False
    try:
        raw = base64.urlsafe_b64decode(sent.replace("+", "-").replace("/", "_") + "==")
    except ValueError:
        return False
    return any(base64.b64decode(i) == raw for i in issued)


def _call_key(fc: Mapping[str, Any]) -> str:
    return json.dumps([fc.get("name"), fc.get("args") or {}], sort_keys=True)


def _error(error: ApiError) -> HttpResponse:
    return HttpResponse.json(error.status, error.body, dict(error.headers))
