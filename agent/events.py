"""Typed events of a chat turn, and their conversion from ADK events. No Gradio here."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from google.adk.events import Event

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
    | TurnDone
)


@dataclass
class EventConverter:
    """Turns the ADK events of one turn (or a stored history) into ChatEvents."""

    started: dict[str, float] = field(default_factory=dict)

    def convert(self, event: Event, *, live: bool = True) -> list[ChatEvent]:
        out: list[ChatEvent] = []
        aborted = event.error_code == "INVOCATION_ABORTED"  # the person pressed Stop
        if (event.error_code or event.error_message) and not aborted:
            out.append(
                ErrorEvent(
                    f"The model reported an error: {event.error_message or event.error_code}"
                )
            )
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
                response = (
                    reply.response
                    if isinstance(reply.response, dict)
                    else {"result": reply.response}
                )
                out.append(
                    ToolCallFinished(reply.id or "", reply.name or "", dict(response), duration)
                )
            elif part.text and not part.thought:
                if event.author == "user":
                    out.append(UserMessage(part.text))
                elif event.partial:
                    out.append(TextDelta(part.text))
                else:
                    out.append(TextFinal(part.text))
        return out
