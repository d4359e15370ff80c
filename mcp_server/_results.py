"""Shaping results for MCP clients: clipped output, a stated cut, and a hard size budget.

The official Python client (and so ADK) rejects one message over 1 MiB, and fastmcp-style results
carry the data twice (as JSON text in `content` and as `structuredContent`). So every result is
measured as it will travel and shrunk until it fits `RESULT_BUDGET_BYTES`, well under 1 MiB.
Also: a command's result in words (what happened, what to do), and files' types and URIs.
"""

from __future__ import annotations

import json
import mimetypes
from typing import Any
from urllib.parse import quote

from fastmcp.tools import ToolResult
from mcp.types import TextContent

from executor import ExecutionResult
from executor.text import clip

from .sandboxes import Sandbox

RESULT_BUDGET_BYTES = 512 << 10


def wire_size(data: dict[str, Any]) -> int:
    """Bytes of a result carrying `data` as JSON text and as structured content."""
    text = json.dumps(data, ensure_ascii=False)
    envelope = {"content": [{"type": "text", "text": text}], "structuredContent": data}
    return len(json.dumps(envelope, ensure_ascii=False).encode("utf-8", "surrogatepass"))


def structured(data: dict[str, Any]) -> ToolResult:
    """A ToolResult with `data` as structured content and as JSON text (as the spec suggests)."""
    text = json.dumps(data, ensure_ascii=False)
    return ToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def fit_texts(
    build: Any, texts: dict[str, str], limit: int, budget: int = RESULT_BUDGET_BYTES
) -> tuple[dict[str, Any], dict[str, int]]:
    """Clip each of `texts` to `limit` characters, then further until `build(clipped)` fits
    `budget` bytes on the wire. Returns the built dict and the characters cut per field."""
    while True:
        clipped, cuts = {}, {}
        for name, text in texts.items():
            clipped[name], cuts[name] = clip(text, limit)
        data = build(clipped, cuts)
        size = wire_size(data)
        if size <= budget or limit <= 200:
            return data, cuts
        limit = max(200, int(limit * budget / size * 0.9))


_IMAGE_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}


def describe_result(
    result: ExecutionResult,
    sandbox: Sandbox,
    timeout: float,
    limit: int,
    max_timeout: float,
    memory: int,
) -> dict[str, Any]:
    flags = {
        name: bool(getattr(result, name, False))
        for name in ("timed_out", "oom_killed", "stopped", "python_state_lost")
    }
    if not flags["oom_killed"] and result.exit_code == 137:
        flags["oom_killed"] = "ran out of memory" in result.stderr
    dropped = {
        "stdout": int(getattr(result, "stdout_dropped_bytes", 0) or 0),
        "stderr": int(getattr(result, "stderr_dropped_bytes", 0) or 0),
    }

    def build(texts: dict[str, str], cuts: dict[str, int]) -> dict[str, Any]:
        notes = []
        if flags["timed_out"]:
            notes.append(
                f"It timed out after {timeout:g} s and was killed with everything it started. "
                f"Make it faster, split it, or pass a larger timeout (max {max_timeout:g})."
            )
        elif flags["oom_killed"]:
            notes.append(
                f"A process was killed because the sandbox ran out of memory "
                f"({memory / 2**30:g} GiB). Process the data in chunks or use less memory."
            )
        elif flags["stopped"]:
            notes.append("It was stopped before it finished.")
        elif result.exit_code == 137:
            notes.append("It was killed (SIGKILL).")
        if flags["python_state_lost"]:
            notes.append(
                "The Python interpreter was restarted: variables, imports and definitions from "
                "earlier run_python calls are gone; define them again."
            )
        for stream in ("stdout", "stderr"):
            if cuts[stream] or dropped[stream]:
                parts = []
                if dropped[stream]:
                    parts.append(f"{dropped[stream]:,} bytes beyond the sandbox's output cap")
                if cuts[stream]:
                    parts.append(f"{cuts[stream]:,} characters from the middle")
                notes.append(
                    f"{stream} was shortened ({' and '.join(parts)} not shown). Redirect output "
                    "to a file and read parts of it with read_file (offset, line_count)."
                )
        data: dict[str, Any] = {
            "status": "ok",
            "sandbox_id": sandbox.sandbox_id,
            "exit_code": result.exit_code,
            "stdout": texts["stdout"],
            "stderr": texts["stderr"],
            "duration_s": round(result.duration_s, 3),
            **{k: v for k, v in flags.items() if v},
        }
        if any(dropped.values()) or any(cuts.values()):
            data["output_cut"] = {
                "stdout_chars_cut": cuts["stdout"],
                "stderr_chars_cut": cuts["stderr"],
                "stdout_bytes_dropped": dropped["stdout"],
                "stderr_bytes_dropped": dropped["stderr"],
            }
        if notes:
            data["note"] = " ".join(notes)
        return data

    data, _ = fit_texts(build, {"stdout": result.stdout, "stderr": result.stderr}, limit)
    return data


def _workspace_relative(path: str) -> str:
    """`path` relative to /workspace (for resource URIs); the executor checks it properly."""
    rel = path.strip()
    return rel[len("/workspace/") :] if rel.startswith("/workspace/") else rel.lstrip("/")


def resource_uri(sandbox_id: str, path: str) -> str:
    return f"sandbox://{sandbox_id}/workspace/{quote(_workspace_relative(path), safe='/')}"


def mime_of(path: str, data: bytes) -> str:
    for magic, mime in _IMAGE_MAGIC.items():
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    guessed, _ = mimetypes.guess_type(path)
    if guessed:
        return guessed
    return "text/plain" if as_text(data) is not None else "application/octet-stream"


def as_text(data: bytes) -> str | None:
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def json_str(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False).encode("utf-8", "surrogatepass")
