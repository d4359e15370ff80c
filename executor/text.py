"""Text for a reader (the model, an MCP client, the chat): long output made short, with head and
tail kept and the cut stated in the text, so nobody mistakes a clipped output for the whole; and
text fenced as a Markdown code block."""

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


def fence(text: str, lang: str = "") -> str:
    """`text` as a Markdown code block; a longer fence when the text holds one itself."""
    ticks = "````" if "```" in text else "```"
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"
