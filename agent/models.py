"""Which model the agent talks to, built so that rate limits and overloads are retried visibly.

Any model string ADK resolves works (Gemini names, LiteLLM's `provider/model`, `offline`). Real
models get a subclass of their ADK class (so ADK's own checks on the model class still hold)
whose calls are retried on 429/5xx, with exponential backoff and jitter, only while nothing has
been streamed yet; each wait is announced through `RETRY_NOTICE` (the chat shows "retrying in
N s"). The clients' own hidden retries are turned off so there is one policy.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
from collections.abc import AsyncGenerator, Callable
from contextvars import ContextVar
from functools import cache
from typing import Any, ClassVar

from google.adk.models import BaseLlm, LlmRequest, LlmResponse
from google.adk.models.registry import LLMRegistry

from settings import Settings, model_name

from . import offline
from .model_errors import describe_retry, retryable, status_of

logger = logging.getLogger(__name__)

# Set by the chat turn that is running: called with (seconds to wait, why) before each retry.
RETRY_NOTICE: ContextVar[Callable[[float, str], None] | None] = ContextVar(
    "retry_notice", default=None
)
# "retryDelay": "7s" (Gemini), "retry in 7.5s", "Please try again in 20s" / "in 1.5 seconds" /
# "in 250ms" (OpenAI-compatible servers).
_RETRY_DELAY_RE = re.compile(
    r"(?:retryDelay['\":\s]+|(?:retry|try again) (?:in|after)\s+)(\d+(?:\.\d+)?)\s*(ms|s)",
    re.IGNORECASE,
)


def hinted_delay(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait: `retry-after-ms` / `retry-after` headers of the
    response the exception carries (openai, LiteLLM), else a delay written in its message."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or getattr(exc, "litellm_response_headers", None)
    if headers:
        for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
            value = headers.get(name)
            try:
                if value is not None:
                    return max(0.0, float(value) * scale)
            except (TypeError, ValueError):
                pass  # an HTTP date: fall back to the message or backoff
    match = _RETRY_DELAY_RE.search(str(exc))
    if match:
        return float(match.group(1)) / (1000 if match.group(2).lower() == "ms" else 1)
    return None


class RetryPolicy:
    """How often and how long to retry a model call that was refused for load."""

    def __init__(self, attempts: int, base_delay_s: float, max_delay_s: float = 60.0) -> None:
        self.attempts = max(1, attempts)
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s

    def delay(self, attempt: int, exc: BaseException) -> float | None:
        """Seconds before attempt `attempt + 1`: the server's hint if it gave one, else
        exponential backoff with jitter; None when the server asks for longer than
        `max_delay_s` (retrying sooner would only be refused again: the person is told)."""
        hinted = hinted_delay(exc)
        if hinted is not None:
            return hinted if hinted <= self.max_delay_s else None
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


class _Retrying:
    """Mixed in front of an ADK model class: retries whole calls that failed before output."""

    retry_policy: ClassVar[Any] = None  # a RetryPolicy, set on each generated class

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        policy: RetryPolicy = type(self).retry_policy
        for attempt in range(1, policy.attempts + 1):
            produced = False
            try:
                async for response in super().generate_content_async(  # type: ignore[misc]
                    llm_request, stream=stream
                ):
                    produced = True
                    yield response
                return
            except Exception as exc:
                if produced or attempt >= policy.attempts or not retryable(exc):
                    raise
                delay = policy.delay(attempt, exc)
                if delay is None:
                    raise
                logger.info(
                    "model call refused (%s); retry %d in %.1f s",
                    status_of(exc=exc),
                    attempt,
                    delay,
                )
                notice = RETRY_NOTICE.get()
                if notice is not None:
                    notice(delay, describe_retry(exc, model=self.model))  # type: ignore[attr-defined]
                await asyncio.sleep(delay)


@cache
def _retrying_class(cls: type[BaseLlm], attempts: int, base_delay_s: float) -> type[BaseLlm]:
    return type(
        f"Retrying{cls.__name__}",
        (_Retrying, cls),
        {
            "retry_policy": RetryPolicy(attempts, base_delay_s),
            "__module__": __name__,
            "__annotations__": {"retry_policy": ClassVar[RetryPolicy]},
        },
    )


def build_model(settings: Settings, name: str | None = None) -> BaseLlm:
    """The model `name` (default: the settings' choice), ready for an agent."""
    name = name or model_name(settings)
    offline.register()
    cls = LLMRegistry.resolve(name)
    if issubclass(cls, offline.OfflineLlm):
        return cls(model=name)
    options: dict[str, Any] = {}
    if cls.__name__ == "LiteLlm":
        # LiteLLM fetches a price list from the internet on import unless told not to, and the
        # openai SDK under it retries twice on its own: one retry policy, ours.
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        options["num_retries"] = 0
        import litellm

        litellm.suppress_debug_info = True
        logging.getLogger("LiteLLM").setLevel(logging.WARNING)  # not two INFO lines per call
    retrying = _retrying_class(cls, settings.model_retries + 1, settings.model_retry_base_s)
    return retrying(model=name, **options)
