"""An MCP tool result as sandbox code receives it (the stubs' module docstrings say the same):

- structured content -> that dict/list (fastmcp's `{"result": x}` wrapping removed when the
  tool's output schema says it wraps);
- text only -> str (several text items joined with "\\n"); no content at all -> None;
- an image -> {"type": "image", "mime_type", "data": <base64 str>} (audio: "type": "audio");
- an embedded resource -> {"type": "resource", "uri", "mime_type", "text" | "blob"};
- a resource link -> {"type": "resource_link", "uri", "name", ...};
- mixed content -> a list of such items, text as {"type": "text", "text": ...};
- `isError` -> a failed outcome carrying the server's message.

The result's JSON size is checked here too: over the limit, the outcome is an error naming the
size and the limit, and the value is dropped.
"""

from __future__ import annotations

import json
from typing import Any

from executor.bridge import CallOutcome

from .catalog import ToolSpec

MAX_RESULT_BYTES = 16 << 20


def _item(content: Any) -> dict[str, Any]:
    kind = getattr(content, "type", None)
    if kind == "text":
        return {"type": "text", "text": content.text}
    if kind in {"image", "audio"}:
        return {"type": kind, "mime_type": content.mime_type, "data": content.data}
    if kind == "resource":
        resource = content.resource
        out: dict[str, Any] = {
            "type": "resource",
            "uri": str(resource.uri),
            "mime_type": getattr(resource, "mime_type", None),
        }
        if getattr(resource, "text", None) is not None:
            out["text"] = resource.text
        else:
            out["blob"] = getattr(resource, "blob", None)
        return out
    if kind == "resource_link":
        out = {"type": "resource_link", "uri": str(content.uri), "name": content.name}
        for key in ("title", "description", "mime_type", "size"):
            value = getattr(content, key, None)
            if value is not None:
                out[key] = value
        return out
    dumped = (
        content.model_dump(mode="json", exclude_none=True) if hasattr(content, "model_dump") else {}
    )
    return {"type": str(kind or "unknown"), **{k: v for k, v in dumped.items() if k != "type"}}


def _wraps(spec: ToolSpec | None, result: Any) -> bool:
    schema = spec.output_schema if spec else None
    if isinstance(schema, dict) and schema.get("x-fastmcp-wrap-result"):
        return True
    meta = getattr(result, "meta", None) or {}
    fastmcp = meta.get("fastmcp") if isinstance(meta, dict) else None
    return isinstance(fastmcp, dict) and bool(fastmcp.get("wrap_result"))


def error_text(result: Any) -> str:
    """The message of an `isError` result (its text items)."""
    texts = [c.text for c in result.content if getattr(c, "type", None) == "text"]
    return "\n".join(texts).strip() or "the tool reported an error without a message"


def value_of(result: Any, spec: ToolSpec | None) -> Any:
    """The Python value of a successful `CallToolResult` (see the module docstring)."""
    structured = result.structured_content
    if structured is not None:
        if isinstance(structured, dict) and set(structured) == {"result"} and _wraps(spec, result):
            return structured["result"]
        return structured
    items = [_item(c) for c in result.content]
    if not items:
        return None
    if all(i["type"] == "text" for i in items):
        return "\n".join(i["text"] for i in items)
    return items[0] if len(items) == 1 else items


def json_size(value: Any) -> int:
    """Bytes of `value` as compact JSON (UTF-8): what the limits count."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def too_large(what: str, size: int, limit: int) -> str:
    return (
        f"the result of {what} is {size:,} bytes as JSON, over the limit of {limit:,} bytes "
        f"({limit / (1 << 20):g} MiB) for one call; ask for less (a page, a filter, a summary)"
    )


def outcome(
    result: Any, spec: ToolSpec | None, what: str, limit: int = MAX_RESULT_BYTES
) -> CallOutcome:
    """A `CallToolResult` as the bridge's answer, its size checked against `limit`."""
    if result.is_error:
        return CallOutcome(ok=False, error=error_text(result))
    value = value_of(result, spec)
    size = json_size(value)
    if size > limit:
        return CallOutcome(ok=False, error=too_large(what, size, limit))
    return CallOutcome(ok=True, value=value)
