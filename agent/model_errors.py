"""Model failures in words a person can act on, and which ones are worth retrying.

ADK reports a failed model call twice (an event with `error_code`/`error_message`, then the
exception) and its message carries a link for ADK's developers and the provider's raw error
dict. The chat shows one sentence instead: what happened and what to do. Pure functions.
"""

from __future__ import annotations

import re

_RETRYABLE_CODES = {408, 429, 500, 502, 503, 504}
_CODE_RE = re.compile(r"\b(400|401|403|404|408|429|500|502|503|504)\b")
_STATUS_WORDS = {
    "RESOURCE_EXHAUSTED": 429,
    "UNAVAILABLE": 503,
    "INTERNAL": 500,
    "DEADLINE_EXCEEDED": 504,
    "INVALID_ARGUMENT": 400,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "NOT_FOUND": 404,
    "RateLimitError": 429,
    "ServiceUnavailableError": 503,
    "InternalServerError": 500,
    "APIConnectionError": 503,
    "Timeout": 408,
    "AuthenticationError": 401,
    "PermissionDeniedError": 403,
    "BadRequestError": 400,
    "NotFoundError": 404,
}


def status_of(
    code: str | None = None, message: str | None = None, exc: BaseException | None = None
) -> int | None:
    """The HTTP-like status of a model failure, from whatever the client gave us."""
    for value in (getattr(exc, "code", None), getattr(exc, "status_code", None)):
        if isinstance(value, int) and 100 <= value < 600:
            return value
    for word in (code, type(exc).__name__ if exc is not None else None):
        if word in _STATUS_WORDS:
            return _STATUS_WORDS[word]
    text = f"{code or ''} {message or ''} {exc or ''}"
    for word, status in _STATUS_WORDS.items():
        if word in text:
            return status
    if exc is not None and _is_connection_error(exc):
        return 503
    match = _CODE_RE.search(text)
    return int(match.group(1)) if match else None


def _is_connection_error(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(
        names & {"ConnectError", "ConnectionError", "ClientConnectorError", "ConnectTimeout"}
    )


def retryable(exc: BaseException) -> bool:
    """Whether a failed model call may succeed if simply tried again (rate limits, overload)."""
    return status_of(exc=exc) in _RETRYABLE_CODES


def _provider_text(message: str) -> str:
    """The provider's own sentence out of ADK's and the clients' wrapping."""
    for pattern in (r"'message':\s*'([^']+)'", r'"message":\s*"([^"]+)"'):
        match = re.search(pattern, message)
        if match:
            return match.group(1)
    text = re.sub(r"https?://\S+", "", message)
    text = re.sub(r"\{.*\}", "", text, flags=re.S)
    # LiteLLM's wrapping: "litellm.BadRequestError: OpenAIException - <the provider's words>"
    text = re.sub(r"^\s*litellm\.\w+:\s*(\w+Exception\s*-\s*)?", "", text)
    return " ".join(text.split())[:300]


def describe_retry(exc: BaseException, *, model: str = "the model") -> str:
    """Why a model call is being retried, without advice (the app is already acting on it)."""
    status = status_of(exc=exc)
    if status == 429:
        return f"{model} is rate limited (429)."
    if exc is not None and _is_connection_error(exc):
        return f"{model}'s service did not answer."
    return f"{model} is unavailable or overloaded ({status})."


def describe_model_error(
    code: str | None = None,
    message: str | None = None,
    exc: BaseException | None = None,
    *,
    model: str = "the model",
) -> str:
    """One sentence for the chat: what went wrong with the model call and what to do."""
    if code == "MALFORMED_FUNCTION_CALL":
        return (
            f"{model} produced a tool call it could not finish (malformed). Ask again, perhaps "
            "in simpler steps."
        )
    status = status_of(code, message, exc)
    detail = _provider_text(message or str(exc or ""))
    if status == 429:
        return (
            f"{model} refused because of its rate limit or quota (429). Wait a minute and try "
            "again; if it persists, check the quota of your API key."
        )
    if status in (401, 403) or "API key" in detail or "API_KEY" in (message or ""):
        return (
            f"{model} rejected the API key ({status or 'auth'}): check GOOGLE_API_KEY (or the "
            "provider's key) in .env, then restart the app. `make doctor` checks it."
        )
    if status in (500, 502, 503, 504, 408):
        return f"{model} is unavailable or overloaded right now ({status}). Try again in a moment."
    if exc is not None and _is_connection_error(exc):
        return f"Cannot reach {model}'s service; check the network and the endpoint settings."
    if status == 404:
        return f"{model} does not exist for this key ({detail}). Check APP_MODEL."
    if status == 400:
        return f"{model} refused the request (400): {detail}"
    return f"The model call failed: {detail or type(exc).__name__ if exc else 'unknown error'}"
