"""A scripted model for tests: a real BaseLlm that makes the tool calls it is told to."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from google.adk.models import BaseLlm, LlmRequest, LlmResponse
from google.adk.models._capabilities import LlmCapabilities
from google.genai import types

_USAGE = types.GenerateContentResponseUsageMetadata(
    prompt_token_count=0, candidates_token_count=0, total_token_count=0
)


def _responses_since_user_text(contents: list[types.Content]) -> list[types.Part]:
    found: list[types.Part] = []
    for content in reversed(contents):
        parts = content.parts or []
        if (
            content.role == "user"
            and any(p.text for p in parts)
            and not any(p.function_response for p in parts)
        ):
            break
        found.extend(p for p in parts if p.function_response)
    return list(reversed(found))


class ScriptedLlm(BaseLlm):
    """Step i of a turn emits `steps[i]` (tool calls, run at once by ADK); then `final_text`.

    `final_text` may contain `{last}`: the last tool response of the turn.
    """

    model: str = "scripted"
    steps: list[list[tuple[str, dict[str, Any]]]] = []  # noqa: RUF012 - pydantic copies defaults
    final_text: str = "done"
    seen_requests: list[LlmRequest] = []  # noqa: RUF012 - pydantic copies defaults

    @property
    def capabilities(self) -> LlmCapabilities:
        return LlmCapabilities(output_schema_and_tools=False)

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        self.seen_requests.append(llm_request)
        responses = _responses_since_user_text(list(llm_request.contents or []))
        step = 0
        done_calls = len(responses)
        while step < len(self.steps) and done_calls >= len(self.steps[step]):
            done_calls -= len(self.steps[step])
            step += 1
        if step < len(self.steps):
            parts = [
                types.Part(function_call=types.FunctionCall(name=name, args=args))
                for name, args in self.steps[step]
            ]
            yield LlmResponse(
                content=types.Content(role="model", parts=parts), usage_metadata=_USAGE
            )
            return
        last = responses[-1].function_response.response if responses else None
        text = self.final_text.replace("{last}", str(last))
        if stream:
            for word in text.split(" "):
                yield LlmResponse(
                    content=types.Content(role="model", parts=[types.Part(text=word + " ")]),
                    partial=True,
                )
        yield LlmResponse(
            content=types.Content(role="model", parts=[types.Part(text=text)]),
            partial=False,
            turn_complete=True,
            usage_metadata=_USAGE,
        )


class FailingLlm(BaseLlm):
    """A model whose every call fails, like a missing API key or an unreachable service."""

    model: str = "failing"

    @property
    def capabilities(self) -> LlmCapabilities:
        return LlmCapabilities(output_schema_and_tools=False)

    async def generate_content_async(self, llm_request, stream=False):
        raise ValueError("No API key was provided")
        yield  # pragma: no cover
