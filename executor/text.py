"""Long output made short for a reader (the model, an MCP client): head and tail kept, the cut
stated in the text, so nobody mistakes a clipped output for the whole."""

from __future__ import annotations


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
