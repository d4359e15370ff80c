"""Shaping results for MCP clients: clipped output, a stated cut, and a hard size budget.

The official Python client (and so ADK) rejects one message over 1 MiB, and fastmcp-style results
carry the data twice (as JSON text in `content` and as `structuredContent`). So every result is
measured as it will travel and shrunk until it fits `RESULT_BUDGET_BYTES`, well under 1 MiB.
"""

from __future__ import annotations

import json
from typing import Any

from fastmcp.tools import ToolResult
from mcp.types import TextContent

RESULT_BUDGET_BYTES = 512 << 10


def clip(text: str, limit: int) -> tuple[str, int]:
    """Keep the head and tail of `text` within `limit` characters; also return how much was cut."""
    if len(text) <= limit:
        return text, 0
    head = limit * 2 // 3
    tail = limit - head
    cut = len(text) - head - tail
    return (
        f"{text[:head]}\n[... {cut:,} characters cut from the middle of this output ...]\n"
        f"{text[-tail:] if tail else ''}",
        cut,
    )


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
