"""Shaping results for MCP clients: clipped output, a stated cut, and a hard size budget.

The official Python client (and so ADK) rejects one message over 1 MiB, and fastmcp-style results
carry the data twice (as JSON text in `content` and as `structuredContent`). So every result is
measured as it will travel and shrunk until it fits `RESULT_BUDGET_BYTES`, well under 1 MiB.
The results themselves are shaped by the tool surface (`tool_surface.shaping`) at a character
limit; `fit` lowers that limit until they fit. Also: files' types and URIs.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastmcp.tools import ToolResult
from mcp.types import TextContent

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


def fit(
    render: Callable[[int], dict[str, Any]], limit: int, budget: int = RESULT_BUDGET_BYTES
) -> dict[str, Any]:
    """`render(limit)` (a result whose texts are clipped to `limit` characters), with the limit
    lowered until the result fits `budget` bytes on the wire (200 characters at the least)."""
    while True:
        data = render(limit)
        size = wire_size(data)
        if size <= budget or limit <= 200:
            return data
        limit = max(200, int(limit * budget / size * 0.9))


_IMAGE_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}


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
