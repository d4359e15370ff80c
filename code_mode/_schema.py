"""JSON Schema -> Python type hints and one-line descriptions, for the generated stubs.

Hints are kept honest and simple: `string` -> `str`, `integer` -> `int`, `number` -> `float`,
`boolean` -> `bool`, `array` -> `list[...]`, `object` -> `dict[str, Any]`, `enum`/`const` ->
`Literal[...]`; anything else (`$ref`, `anyOf`, `oneOf`, `allOf`, a list of types, e.g. nullable)
is `Any`, with the schema summarised in the docstring instead.
"""

from __future__ import annotations

import json
from typing import Any

_SIMPLE = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "None"}
_MAX_LITERALS = 30
_MAX_SUMMARY = 400


def _literal_ok(values: list[Any]) -> bool:
    return 0 < len(values) <= _MAX_LITERALS and all(
        v is None or (isinstance(v, str | int | bool) and not isinstance(v, float)) for v in values
    )


def annotation(schema: Any) -> str:
    """The type hint for a value described by `schema` (source text)."""
    if not isinstance(schema, dict):
        return "Any"
    if "enum" in schema and isinstance(schema["enum"], list):
        values = schema["enum"]
        return f"Literal[{', '.join(repr(v) for v in values)}]" if _literal_ok(values) else "Any"
    if "const" in schema:
        value = schema["const"]
        return f"Literal[{value!r}]" if _literal_ok([value]) else "Any"
    if any(key in schema for key in ("$ref", "anyOf", "oneOf", "allOf")):
        return "Any"
    kind = schema.get("type")
    if isinstance(kind, str) and kind in _SIMPLE:
        return _SIMPLE[kind]
    if kind == "array":
        items = schema.get("items")
        return f"list[{annotation(items)}]" if isinstance(items, dict) else "list[Any]"
    if kind == "object" or (kind is None and "properties" in schema):
        return "dict[str, Any]"
    return "Any"


def _resolve(schema: Any, root: dict[str, Any]) -> Any:
    """A local `$ref` (`#/$defs/X`, `#/definitions/X`) resolved once; anything else as is."""
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        ref = schema["$ref"]
        if ref.startswith("#/"):
            node: Any = root
            for part in ref[2:].split("/"):
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict):
                return node
    return schema


def compact(schema: Any) -> str:
    """The schema as short JSON (cut at a few hundred characters)."""
    text = json.dumps(schema, separators=(",", ":"), sort_keys=True, default=str)
    return text if len(text) <= _MAX_SUMMARY else text[: _MAX_SUMMARY - 3] + "..."


def describe(schema: Any, root: dict[str, Any] | None = None, depth: int = 0) -> str:
    """A short reading of `schema` for a docstring, e.g. "str", "one of 'a', 'b'",
    "list of str", "dict with keys: a (str), b (int, optional)"."""
    root = root if root is not None else (schema if isinstance(schema, dict) else {})
    schema = _resolve(schema, root)
    if not isinstance(schema, dict):
        return "any value"
    if "enum" in schema and isinstance(schema["enum"], list):
        return "one of " + ", ".join(repr(v) for v in schema["enum"][:_MAX_LITERALS])
    if "const" in schema:
        return f"exactly {schema['const']!r}"
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options and depth < 3:
            readings = [describe(o, root, depth + 1) for o in options]
            if "None" in readings and len(readings) == 2:
                other = next(r for r in readings if r != "None")
                return f"{other} or None"
            return " or ".join(readings)
    if "allOf" in schema or "$ref" in schema:
        return f"schema {compact(schema)}"
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(_SIMPLE.get(k, str(k)) for k in kind)
    if isinstance(kind, str) and kind in _SIMPLE:
        return _SIMPLE[kind]
    if kind == "array":
        items = schema.get("items")
        if isinstance(items, dict) and depth < 3:
            return f"list of {describe(items, root, depth + 1)}"
        return "list"
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties")
        if isinstance(properties, dict) and properties and depth < 2:
            required = set(schema.get("required") or [])
            keys = []
            for key, sub in list(properties.items())[:20]:
                reading = describe(sub, root, depth + 1)
                keys.append(f"{key} ({reading}{'' if key in required else ', optional'})")
            more = ", ..." if len(properties) > 20 else ""
            return "dict with keys: " + ", ".join(keys) + more
        return "dict"
    return "any value"
