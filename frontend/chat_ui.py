"""Pure functions: chat events -> Gradio chat messages, file listings -> table rows. No server here.

Messages are Gradio 6 "messages" dicts: `{"role", "content", "metadata"}`. A tool call is one
assistant message whose `metadata.title` makes it a collapsible step; `status` is "pending" while
it runs and "done" after, with its exit code, duration and (shortened) output.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agent.events import (
    ChatEvent,
    ErrorEvent,
    FilesUploaded,
    ModelRetrying,
    TextDelta,
    TextFinal,
    ToolCallFinished,
    ToolCallStarted,
    ToolOutput,
    TurnDone,
    UserMessage,
    step_outcome,
)
from executor.text import fence


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


OUTPUT_SHOWN_CHARS = 4000
LIVE_SHOWN_CHARS = 3000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".bmp")


def shorten(text: str, limit: int = OUTPUT_SHOWN_CHARS) -> str:
    if len(text) <= limit:
        return text
    return (
        f"{text[:limit]}\n… ({len(text) - limit:,} more characters not shown here; "
        "ask the agent to save the output to a file and download it)"
    )


def _plain(text: str) -> str:
    """Text shown literally in a step's title (titles render HTML and markdown)."""
    escaped = html.escape(text, quote=False)
    return re.sub(r"([\\`*_\[\]#|~])", r"\\\1", escaped)


def _one_line(text: str, limit: int = 70) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    more = len(text.strip().splitlines()) > 1 or len(first) > limit
    return _plain(first[:limit]) + (" …" if more else "")


def verdict_html(outcome: str, words: str) -> str:
    """A step's verdict, coloured by how it ended (see CSS `.step-<outcome>`)."""
    return f"<span class='step-{outcome}'>{html.escape(words)}</span>"


def tool_title(name: str, args: dict[str, Any]) -> str:
    """What a collapsed tool step says: the tool and its main argument."""
    if name == "execute_bash":
        return f"Ran  {_one_line(str(args.get('command', '')))}"
    if name == "run_python":
        return f"Python  {_one_line(str(args.get('code', '')))}"
    if name in {"read_file", "write_file", "list_files"}:
        return f"{name}  {_plain(str(args.get('path', '/workspace')))}"
    if name == "read_docstring":
        target = f"{args.get('module_path', '')}.{args.get('function_name', '')}"
        return f"read_docstring  {_plain(target)}"
    if name == "load_skill":
        return f"load_skill  {_plain(str(args.get('skill_name', '')))}"
    if name == "run_skill_script":
        return f"Skill script  {_one_line(str(args.get('command') or args.get('file_path', '')))}"
    return _plain(name)


def tool_body(name: str, args: dict[str, Any]) -> str:
    if name == "execute_bash":
        return fence(str(args.get("command", "")), "bash")
    if name == "run_python":
        return fence(str(args.get("code", "")), "python")
    if name == "write_file":
        return f"`{args.get('path')}`\n\n" + fence(shorten(str(args.get("content", "")), 1500))
    if not args:
        return ""
    return fence(json.dumps(args, ensure_ascii=False, indent=1), "json")


VERDICT_WORDS = {
    "ok": "ok",
    "failed": "exit {code}",
    "timed_out": "timed out",
    "stopped": "stopped",
    "oom": "out of memory",
    "error": "error",
}


def mcp_calls_line(response: dict[str, Any]) -> str:
    """The MCP calls a step's code made (code mode): `server.tool` 0.12 s ok, ..."""
    shown = []
    for call in response.get("mcp_calls") or []:
        if not isinstance(call, dict):
            continue
        mark = "ok" if call.get("ok") else f"error: {_one_line(str(call.get('error', '')), 80)}"
        seconds = call.get("duration_s")
        timing = f" {seconds:g} s" if isinstance(seconds, int | float) else ""
        shown.append(f"`{call.get('call', '?')}`{timing} {mark}")
    more = response.get("mcp_calls_not_listed")
    tail = f", and {more} more" if more else ""
    return "MCP calls: " + ", ".join(shown) + tail


def tool_result(response: dict[str, Any]) -> tuple[str, str]:
    """(verdict, markdown) for a finished tool call."""
    outcome = step_outcome(response)  # the same classification the events carry
    verdict = VERDICT_WORDS[outcome].format(code=response.get("exit_code"))
    if outcome == "error" or ("error" in response and "status" not in response):
        hint = f"\n\n_{response['hint']}_" if response.get("hint") else ""
        text = response.get("error", "unknown error")
        return verdict, (f"_{text}_" if outcome == "stopped" else f"**Error:** {text}{hint}")
    if "exit_code" in response:
        code = response["exit_code"]
        label = {"timed_out": " (timed out)", "stopped": " (stopped)", "oom": " (out of memory)"}
        parts = [f"**exit {code}**{label.get(outcome, '')}"]
        if response.get("stdout"):
            parts.append(fence(shorten(response["stdout"])))
        if response.get("stderr"):
            parts.append("stderr:\n" + fence(shorten(response["stderr"])))
        if not response.get("stdout") and not response.get("stderr"):
            parts.append("_(no output)_")
        if response.get("mcp_calls"):
            parts.append(mcp_calls_line(response))
        if response.get("note"):
            parts.append(f"_{response['note']}_")
        return verdict, "\n\n".join(parts)
    shown = {k: v for k, v in response.items() if k != "status"}
    if "content" in shown:
        return verdict, fence(shorten(str(shown["content"])))
    return verdict, fence(shorten(json.dumps(shown, ensure_ascii=False, indent=1)), "json")


class Transcript:
    """The chat as Gradio messages, updated event by event (live or from stored history)."""

    def __init__(self, messages: list[dict[str, Any]] | None = None) -> None:
        self.messages: list[dict[str, Any]] = [dict(m) for m in messages or []]
        self._text_index: int | None = None  # the reply message being streamed into
        self._tools: dict[str, int] = {}
        self._live: dict[str, str] = {}  # output of running tool calls, as it streams
        self._bodies: dict[str, str] = {}  # a running step's content before its live output

    def add_user(self, text: str, files: Iterable[str] = ()) -> None:
        for path in files:
            self.messages.append({"role": "user", "content": {"path": path}})
        if text.strip():
            self.messages.append({"role": "user", "content": text})
        self._text_index = None

    def apply(self, event: ChatEvent) -> None:
        if isinstance(event, UserMessage):
            self.add_user(event.text)
        elif isinstance(event, FilesUploaded):
            listed = ", ".join(f"`{p}` ({human_size(s)})" for p, s in event.files)
            self._say(f"Uploaded to the sandbox: {listed}", title="Files")
        elif isinstance(event, TextDelta):
            if self._text_index is None:
                self.messages.append({"role": "assistant", "content": ""})
                self._text_index = len(self.messages) - 1
            message = self.messages[self._text_index]
            self.messages[self._text_index] = {
                **message,
                "content": message["content"] + event.text,
            }
        elif isinstance(event, TextFinal):
            if self._text_index is None:
                self.messages.append({"role": "assistant", "content": event.text})
            else:
                self.messages[self._text_index] = {"role": "assistant", "content": event.text}
            self._text_index = None
        elif isinstance(event, ToolCallStarted):
            self._text_index = None
            self.messages.append(
                {
                    "role": "assistant",
                    "content": tool_body(event.name, event.args),
                    "metadata": {
                        "title": tool_title(event.name, event.args),
                        "status": "pending",
                        "id": event.call_id,
                    },
                }
            )
            self._tools[event.call_id] = len(self.messages) - 1
        elif isinstance(event, ToolOutput):
            self._show_live(event)
        elif isinstance(event, ToolCallFinished):
            self._live.pop(event.call_id, None)
            self._finish_tool(event)
        elif isinstance(event, ErrorEvent):
            self._text_index = None
            self.messages.append({"role": "assistant", "content": f"**Error:** {event.message}"})
        elif isinstance(event, ModelRetrying):
            self._text_index = None
            self.messages.append(
                {
                    "role": "assistant",
                    "content": f"_{event.reason} Retrying in {event.delay_s:.0f} s…_",
                    "metadata": {"title": "Model busy: retrying", "status": "done"},
                }
            )
        elif isinstance(event, TurnDone):
            for index in self._tools.values():
                metadata = self.messages[index].get("metadata", {})
                if metadata.get("status") == "pending":
                    self.messages[index] = {
                        **self.messages[index],
                        "metadata": {
                            **metadata,
                            "status": "done",
                            "title": f"{metadata['title']}  · {verdict_html('stopped', 'stopped')}",
                        },
                    }
            self._tools.clear()
            self._text_index = None
            if event.stopped:
                self.messages.append({"role": "assistant", "content": "_Stopped._"})

    def _show_live(self, event: ToolOutput) -> None:
        index = self._tools.get(event.call_id)
        if index is None:
            return
        text = self._live.get(event.call_id, "") + event.text
        self._live[event.call_id] = text[-LIVE_SHOWN_CHARS * 2 :]
        shown = text[-LIVE_SHOWN_CHARS:]
        body = self._bodies.setdefault(event.call_id, self.messages[index]["content"])
        self.messages[index] = {
            **self.messages[index],
            "content": f"{body}\n\n_running…_\n" + fence(shown),
        }

    def _say(self, text: str, title: str) -> None:
        self.messages.append(
            {"role": "assistant", "content": text, "metadata": {"title": title, "status": "done"}}
        )

    def _finish_tool(self, event: ToolCallFinished) -> None:
        index = self._tools.pop(event.call_id, None)
        if index is None:  # a response without its call (history cut): show it on its own
            self.messages.append(
                {
                    "role": "assistant",
                    "content": "",
                    "metadata": {"title": event.name, "status": "done"},
                }
            )
            index = len(self.messages) - 1
        message = self.messages[index]
        message = {**message, "content": self._bodies.pop(event.call_id, message["content"])}
        verdict, result = tool_result(event.response)
        duration = (
            event.duration_s if event.duration_s is not None else event.response.get("duration_s")
        )
        metadata = dict(message.get("metadata", {}))
        metadata["status"] = "done"
        label = verdict_html(event.outcome, verdict)
        metadata["title"] = f"{metadata.get('title', _plain(event.name))}  · {label}"
        if duration is not None:
            metadata["duration"] = round(float(duration), 2)
        body = message["content"]
        self.messages[index] = {
            "role": "assistant",
            "content": f"{body}\n\n{result}" if body else result,
            "metadata": metadata,
        }
        for path in event.images:  # the pictures the step made, right under it
            self.messages.append(
                {"role": "assistant", "content": {"path": path, "alt_text": Path(path).name}}
            )


def messages_from_history(events: Iterable[ChatEvent]) -> list[dict[str, Any]]:
    transcript = Transcript()
    for event in events:
        transcript.apply(event)
    transcript.apply(TurnDone())
    return transcript.messages


def is_image(path: str) -> bool:
    return path.lower().endswith(IMAGE_SUFFIXES)
