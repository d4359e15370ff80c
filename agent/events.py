"""Typed events of a chat turn, and their conversion from ADK events. No Gradio here."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from google.adk.events import Event

from executor.hints import HINT_SEPARATOR

from .model_errors import describe_model_error

ADK_ABORTED = "Invocation was aborted by client."  # ADK's reply to a call cut by Stop


def step_outcome(response: dict[str, Any]) -> str:
    """How a finished tool call ended, from the response's fields (never from its text):
    "ok", "failed", "timed_out", "stopped", "oom" or "error"."""
    if response.get("status") == "error":
        return "error"
    if "error" in response and "status" not in response:  # ADK's own replies
        return "stopped" if response["error"] == ADK_ABORTED else "error"
    if response.get("stopped"):
        return "stopped"
    if response.get("timed_out"):
        return "timed_out"
    if response.get("oom_killed"):
        return "oom"
    if response.get("exit_code", 0) != 0:
        return "failed"
    return "ok"


@dataclass(frozen=True)
class UserMessage:
    """What the person sent (only in history; a live turn starts from the caller's text)."""

    text: str


@dataclass(frozen=True)
class FilesUploaded:
    """Files stored in /workspace before the turn: (path, size in bytes)."""

    files: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class TextDelta:
    """A piece of the reply being streamed; append it to the current reply."""

    text: str


@dataclass(frozen=True)
class TextFinal:
    """The whole text of one reply message; replaces the deltas streamed before it."""

    text: str


@dataclass(frozen=True)
class ToolCallStarted:
    call_id: str
    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class ToolOutput:
    """Output of a tool call while it still runs (live; not kept in history)."""

    call_id: str
    stream: str  # "stdout" or "stderr"
    text: str


@dataclass(frozen=True)
class ToolCallFinished:
    call_id: str
    name: str
    response: dict[str, Any]
    duration_s: float | None = None
    images: tuple[str, ...] = ()  # local copies of the images the step made, to show inline

    @property
    def outcome(self) -> str:
        return step_outcome(self.response)

    @property
    def exit_code(self) -> int | None:
        return self.response.get("exit_code")


@dataclass(frozen=True)
class ErrorEvent:
    """Something went wrong in words a person can read; the chat goes on."""

    message: str


@dataclass(frozen=True)
class ModelRetrying:
    """The model refused for load (rate limit, overload); the call is tried again soon."""

    delay_s: float
    reason: str


@dataclass(frozen=True)
class TurnDone:
    stopped: bool = False


ChatEvent = (
    UserMessage
    | FilesUploaded
    | TextDelta
    | TextFinal
    | ToolCallStarted
    | ToolOutput
    | ToolCallFinished
    | ErrorEvent
    | ModelRetrying
    | TurnDone
)

UPLOADS_KEY = "uploads"  # state delta of a user event: the files uploaded with that message
_NOTE = "[Files uploaded to the sandbox: {}]"


def upload_note(files: Sequence[tuple[str, int]]) -> str:
    """What the model reads about the files uploaded with a message (a part of its own)."""
    return _NOTE.format(", ".join(f"{path} ({size:,} bytes)" for path, size in files))


def upload_paths(note: str) -> str | None:
    """The listing inside an upload note (the offline model reads it as a model would)."""
    _, _, rest = note.partition("[Files uploaded to the sandbox: ")
    return rest.rsplit("]", 1)[0] if rest else None


def is_mcp_result(raw: Any) -> bool:
    return (
        isinstance(raw, dict)
        and "content" in raw
        and ("isError" in raw or "structuredContent" in raw)
    )


def tool_response(raw: Any) -> dict[str, Any]:
    """A tool's reply as a dict of fields. Replies from MCP tools (APP_AGENT_TOOLS=mcp) come as
    the MCP call result: its structured content is the same dict the direct tools return."""
    if not isinstance(raw, dict):
        return {"result": raw}
    structured = raw.get("structuredContent")
    if isinstance(structured, dict):
        extra = {k: raw[k] for k in ("images",) if k in raw}  # added by our callbacks
        return {**structured, **extra}
    if raw.get("isError"):
        texts = [c.get("text", "") for c in raw.get("content") or [] if isinstance(c, dict)]
        error, _, hint = (" ".join(t for t in texts if t) or "tool error").partition(HINT_SEPARATOR)
        return {"status": "error", "error": error, **({"hint": hint} if hint else {})}
    return dict(raw)


@dataclass
class EventConverter:
    """Turns the ADK events of one turn (or a stored history) into ChatEvents."""

    model: str = "the model"
    started: dict[str, float] = field(default_factory=dict)
    errors: int = 0  # model errors reported so far (the turn's exception need not repeat one)
    answered: bool = False  # the model said something (text or an error) since its last step

    def empty_reply(self) -> ErrorEvent | None:
        """What to show when a turn ended with nothing from the model after its last step (a
        real model sometimes returns no text and no call): the person would see nothing."""
        if self.answered:
            return None
        return ErrorEvent(
            f"{self.model} returned an empty reply. Send your message again, or rephrase it."
        )

    def convert(self, event: Event, *, live: bool = True) -> list[ChatEvent]:
        out: list[ChatEvent] = []
        aborted = event.error_code == "INVOCATION_ABORTED"  # the person pressed Stop
        if (event.error_code or event.error_message) and not aborted and not event.partial:
            self.errors += 1
            out.append(
                ErrorEvent(
                    describe_model_error(event.error_code, event.error_message, model=self.model)
                )
            )
        if event.author == "user":
            return out + self._user(event)
        parts = event.content.parts if event.content and event.content.parts else []
        for part in parts:
            if part.function_call and not event.partial:
                call = part.function_call
                self.started[call.id or ""] = time.monotonic()
                out.append(ToolCallStarted(call.id or "", call.name or "", dict(call.args or {})))
            elif part.function_response:
                reply = part.function_response
                began = self.started.pop(reply.id or "", None)
                duration = time.monotonic() - began if live and began is not None else None
                response = tool_response(reply.response)
                out.append(
                    ToolCallFinished(reply.id or "", reply.name or "", dict(response), duration)
                )
            elif part.text and not part.thought:
                out.append(TextDelta(part.text) if event.partial else TextFinal(part.text))
        for chat_event in out:
            if isinstance(chat_event, ToolCallFinished):
                self.answered = False
            elif isinstance(chat_event, ErrorEvent) or (
                isinstance(chat_event, TextDelta | TextFinal) and chat_event.text.strip()
            ):
                self.answered = True
        return out

    @staticmethod
    def _user(event: Event) -> list[ChatEvent]:
        """What the person sent: the first text part (later parts are notes for the model, such
        as where uploads went) and the uploads recorded with it."""
        out: list[ChatEvent] = []
        parts = event.content.parts if event.content and event.content.parts else []
        texts = [p.text for p in parts if p.text and not p.thought]
        delta = event.actions.state_delta if event.actions else {}
        uploads = delta.get(UPLOADS_KEY) if delta else None
        if uploads:
            texts = texts[:-1]  # the service adds one last part for the model: the upload note
        if texts and texts[0].strip():
            out.append(UserMessage(texts[0]))
        if uploads:
            out.append(FilesUploaded(tuple((str(p), int(n)) for p, n in uploads)))
        return out
