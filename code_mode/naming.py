"""Python names for MCP names: how `google-drive` becomes `tools.mcp.google_drive`.

The rule (the same for server modules, tool functions and argument names):

1. A name that already is a lowercase ASCII identifier not starting with `_` stays as it is
   (`get_current_time`).
2. Otherwise camelCase is split into words (`getDocument` -> `get_document`, `HTTPServer` ->
   `http_server`), accents are dropped (`café` -> `cafe`), every run of other characters
   (`-`, `.`, `/`, spaces, ...) becomes one `_` (`get-tiny-image` -> `get_tiny_image`), and the
   result is lowercased, without leading or trailing `_` (names starting with `_` would be
   private, and the generated modules keep their own helpers there).
3. A leading digit gets a prefix naming the kind: `mcp_` for modules, `tool_` for functions,
   `arg_` for arguments (`2fa` -> `mcp_2fa`); a name with nothing usable left becomes that prefix
   without its `_` (`mcp`, `tool`, `arg`).
4. A Python keyword or a builtin's name gets a trailing `_` (`class` -> `class_`, `id` -> `id_`).
5. Collisions within one namespace (the modules of `tools.mcp`, the functions of a module, the
   arguments of a function) are resolved deterministically: names that needed no change keep
   their name first, then the others in sorted order of their original names; a later one gets
   `_2`, `_3`, ... (`getDocument` and `get-document` -> `get_document` and `get_document_2`).

The original names are what crosses the bridge: a stub sends them, never the Python names.
"""

from __future__ import annotations

import builtins
import keyword
import re
import unicodedata
from collections.abc import Iterable
from typing import Literal

Kind = Literal["module", "function", "argument"]

_PREFIX: dict[Kind, str] = {"module": "mcp", "function": "tool", "argument": "arg"}
_LOWER_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
_CAMEL_1 = re.compile(r"([A-Z]+)([A-Z][a-z])")  # HTTPServer -> HTTP_Server
_CAMEL_2 = re.compile(r"([a-z0-9])([A-Z])")  # getDocument -> get_Document
_OTHER = re.compile(r"[^A-Za-z0-9]+")
_RESERVED = frozenset(dir(builtins)) | frozenset(keyword.kwlist)


def python_name(name: str, kind: Kind) -> str:
    """The Python identifier for one MCP name, before collisions are resolved (rules 1-4)."""
    if _LOWER_IDENT.match(name) and not name.startswith("_"):
        base = name
    else:
        ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
        words = _CAMEL_2.sub(r"\1_\2", _CAMEL_1.sub(r"\1_\2", ascii_name))
        base = _OTHER.sub("_", words).strip("_").lower()
    prefix = _PREFIX[kind]
    if not base:
        return prefix
    if base[0].isdigit():
        base = f"{prefix}_{base}"
    if base in _RESERVED:
        base += "_"
    return base


def assign_names(names: Iterable[str], kind: Kind, taken: Iterable[str] = ()) -> dict[str, str]:
    """Python names for every MCP name of one namespace, collisions resolved (rule 5).

    `taken` holds names the namespace already uses (they are never given out)."""
    unique = sorted(set(names))
    used = set(taken)
    out: dict[str, str] = {}
    unchanged = [n for n in unique if python_name(n, kind) == n]
    for original in unchanged + [n for n in unique if n not in set(unchanged)]:
        base = python_name(original, kind)
        candidate, counter = base, 1
        while candidate in used:
            counter += 1
            candidate = f"{base}_{counter}"
        used.add(candidate)
        out[original] = candidate
    return out
