"""The generated files of `/tools/mcp`: one readable Python module per MCP server, and an
`__init__.py` per user listing that user's modules.

A stub function is a typed signature, the tool's description as its docstring and one line of
body that hands the ORIGINAL names to the sandbox runtime (written by the executor):

    def get_current_time(timezone: str) -> dict[str, Any]:
        \"\"\"Get current time in a specific timezone ...\"\"\"
        return _call("time", "get_current_time", _given({"timezone": timezone}))

Nothing of a server's config (command, args, env, URL, headers) is ever written into a stub;
the texts are also passed through the redactor, in case a server echoes a secret.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from . import _schema
from .catalog import ServerListing, ToolSpec
from .naming import assign_names

RESULTS_DOC = """\
What a call returns: structured content as a dict (or list); a text-only result as str
(several text parts joined with newlines); an image as {"type": "image", "mime_type": ...,
"data": <base64 str>} (audio the same with "type": "audio"); an embedded resource as
{"type": "resource", "uri": ..., "mime_type": ..., "text": ... or "blob": <base64 str>}; a
resource link as {"type": "resource_link", "uri": ..., "name": ..., ...}; mixed content as a
list of such items (text as {"type": "text", "text": ...}). A tool error, or a call that
fails (server down, timeout, result too large), raises tools.mcp.McpToolError with the
server's message."""

NAMING_DOC = """\
Names: module, function and argument names are Python identifiers made from the MCP names:
lowercase identifiers stay as they are; camelCase and kebab-case become snake_case
(getDocument -> get_document, get-tiny-image -> get_tiny_image); keywords and builtins get a
trailing _ (class -> class_); a leading digit gets a prefix (2fa -> tool_2fa); clashes get
_2, _3 in sorted order of the original names. The server receives its original names."""

_MAX_TEXT = 8000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class ServerView:
    """What a stub module is made from: a server's name, its module name, and either its
    listing or the reason it has none (`reason` may be set with a listing too: a server
    that is down now but was listed before)."""

    server: str
    module: str
    listing: ServerListing | None
    reason: str = ""


@dataclass(frozen=True)
class FunctionStub:
    """One generated function: its Python and MCP names, signature, summary and docstring."""

    module: str  # "tools.mcp.time"
    name: str
    tool: str  # the original MCP name
    signature: str  # "get_current_time(timezone: str) -> dict[str, Any]"
    summary: str
    docstring: str
    source: str


def _clean(text: str, limit: int = _MAX_TEXT) -> str:
    """Server-given text made safe for a docstring: valid UTF-8, no control characters, cut."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\t", "    ")).strip()
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _doc_literal(text: str, indent: str) -> str:
    """`text` as a triple-quoted docstring, indented, that compiles whatever the text holds."""
    text = text.replace("\\", "\\\\")
    # only runs of three quotes, and quotes right before the closing ones, would end the string
    text = re.sub(r'"{3,}|"+$', lambda m: '\\"' * len(m.group()), text)
    lines = text.split("\n")
    body = "\n".join((indent + line) if line.strip() else "" for line in lines[1:])
    head = lines[0]
    if len(lines) == 1:
        return f'{indent}"""{head}"""'
    return f'{indent}"""{head}\n{body}\n{indent}"""'


def module_names(servers: Iterable[str]) -> dict[str, str]:
    """Server name -> module name in `tools.mcp` (over every configured server, so a server's
    module has the same name for every user)."""
    return assign_names(servers, "module")


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?", ":", ")")) else text + "."


def _wrap(text: str) -> str:
    return textwrap.fill(text, 92)


def _summary(text: str) -> str:
    first = text.strip().split("\n\n")[0].replace("\n", " ").strip()
    sentence = re.split(r"(?<=[.!?])\s", first, maxsplit=1)[0]
    return sentence[:200]


def _unwrapped_output(spec: ToolSpec) -> dict[str, Any] | None:
    schema = spec.output_schema
    if isinstance(schema, dict) and schema.get("x-fastmcp-wrap-result"):
        inner = (schema.get("properties") or {}).get("result")
        if isinstance(inner, dict):
            return {**inner, **({"$defs": schema["$defs"]} if "$defs" in schema else {})}
    return schema if isinstance(schema, dict) else None


def _arguments(spec: ToolSpec) -> list[tuple[str, str, dict[str, Any], bool]]:
    """(original name, python name, schema, required), required ones first."""
    schema = spec.input_schema if isinstance(spec.input_schema, dict) else {}
    properties = schema.get("properties")
    properties = dict(properties) if isinstance(properties, dict) else {}
    required = [r for r in schema.get("required") or [] if isinstance(r, str)]
    for name in required:
        properties.setdefault(name, {})
    names = assign_names(properties, "argument")
    ordered = [n for n in properties if n in required] + [
        n for n in properties if n not in required
    ]
    return [
        (
            n,
            names[n],
            properties[n] if isinstance(properties[n], dict) else {},
            n in required,
        )
        for n in ordered
    ]


def render_function(server: str, module: str, name: str, spec: ToolSpec) -> FunctionStub:
    """The source of one stub function (and what discovery shows of it)."""
    root = spec.input_schema if isinstance(spec.input_schema, dict) else {}
    params, doc_args, sent = [], [], []
    for original, python, schema, required in _arguments(spec):
        hint = _schema.annotation(schema)
        params.append(f"{python}: {hint}" if required else f"{python}: {hint} = _UNSET")
        sent.append(f"{original!r}: {python}")
        parts = [_sentence(_clean(str(schema.get("description") or ""), 1000) or "No description")]
        if hint == "Any" and schema:
            parts.append(f"Type: {_schema.describe(schema, root)}.")
        if not required:
            if "default" in schema:
                parts.append(f"Optional; the server's default: {schema['default']!r}.")
            else:
                parts.append("Optional; left out unless given.")
        if original != python:
            parts.append(f"(MCP name: {original})")
        kind = hint if required else f"{hint}, optional"
        doc_args.append(f"{python} ({kind}): " + " ".join(parts))

    output = _unwrapped_output(spec)
    if output is not None:
        returns_hint = _schema.annotation(output)
        returns_doc = _schema.describe(output)
    else:
        returns_hint = "Any"
        returns_doc = "text (str); other content as the module docstring says."

    description = _clean(spec.description) or (spec.title or f"The MCP tool {spec.name!r}.")
    doc = description
    doc += f"\n\nMCP tool {spec.name!r} of server {server!r}."
    if doc_args:
        doc += "\n\nArgs:\n" + "\n".join(
            textwrap.fill(line, 92, initial_indent="    ", subsequent_indent="        ")
            for line in doc_args
        )
    doc += "\n\nReturns:\n" + textwrap.fill(
        returns_doc, 92, initial_indent="    ", subsequent_indent="    "
    )
    doc += "\n\nRaises:\n    McpToolError: the tool reported an error, or the call failed."
    signature = f"{name}({', '.join(params)}) -> {returns_hint}"
    source = (
        f"def {signature}:\n"
        f"{_doc_literal(doc, '    ')}\n"
        f"    return _call({server!r}, {spec.name!r}, _given({{{', '.join(sent)}}}))\n"
    )
    return FunctionStub(
        module=f"tools.mcp.{module}",
        name=name,
        tool=spec.name,
        signature=signature,
        summary=_summary(description),
        docstring=doc,
        source=source,
    )


def functions(view: ServerView) -> list[FunctionStub]:
    """Every stub function of a server's module, in the server's order."""
    if view.listing is None:
        return []
    names = assign_names((t.name for t in view.listing.tools), "function")
    return [render_function(view.server, view.module, names[t.name], t) for t in view.listing.tools]


def module_docstring(view: ServerView, stubs: Sequence[FunctionStub]) -> str:
    title = _clean(view.listing.title, 200) if view.listing else ""
    head = f"MCP server {view.server!r}" + (f" ({title})" if title and title != view.server else "")
    lines = [f"{head}, as Python functions."]
    if view.listing and view.listing.instructions:
        lines += ["", "The server's instructions:", "", _clean(view.listing.instructions)]
    if view.reason:
        lines += ["", _wrap(f"Unavailable now: {view.reason}")]
    if view.listing is None:
        lines += [
            "",
            _wrap(
                "This module has no functions: the server's tools could not be listed, and "
                "every use of the module raises tools.mcp.McpToolError saying why."
            ),
        ]
    else:
        example = stubs[0].name if stubs else "some_tool"
        lines += [
            "",
            _wrap(
                f"How to call: `from tools.mcp import {view.module}`, then "
                f"`{view.module}.{example}(...)` with keyword arguments (the tool's input "
                "properties). Optional arguments left out are not sent: the server's own "
                "default applies."
            ),
            "",
            "Functions:",
            *(f"    {s.name}: {s.summary}" for s in stubs),
        ]
    lines += ["", RESULTS_DOC, "", NAMING_DOC]
    return "\n".join(lines)


_PRELUDE = '''
from typing import Any, Literal

from tools.mcp._runtime import call as _call


class _Unset:
    """An argument left out: it is not sent, so the server's own default applies."""

    def __repr__(self) -> str:
        return "<server default>"


_UNSET: Any = _Unset()


def _given(arguments: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in arguments.items() if value is not _UNSET}
'''

_UNAVAILABLE = """
from tools.mcp._runtime import McpToolError as _McpToolError

_REASON = {reason!r}


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    raise _McpToolError(f"MCP server {server!r} is unavailable: {{_REASON}}")
"""


def render_module(view: ServerView) -> tuple[str, list[FunctionStub]]:
    """The text of `tools/mcp/<module>.py` and its functions."""
    stubs = functions(view)
    text = f"{_doc_literal(module_docstring(view, stubs), '')}\n"
    if view.listing is None:
        text += _UNAVAILABLE.format(reason=view.reason or "not listed", server=view.server)
        return text, stubs
    text += _PRELUDE
    text += f"\n\n__all__ = {[s.name for s in stubs]!r}\n"
    for stub in stubs:
        text += "\n\n" + stub.source
    return text, stubs


def render_init(owner: str, views: Sequence[ServerView], counts: dict[str, int]) -> str:
    """The text of `tools/mcp/__init__.py` for one user."""
    width = max((len(v.module) for v in views), default=0)
    rows = []
    for view in views:
        if view.listing is None:
            what = f"unavailable: {_summary(view.reason or 'not listed')}"
        else:
            what = f"{counts.get(view.module, 0)} tool(s)"
            if view.reason:
                what += f" (down now: {_summary(view.reason)})"
        rows.append(f"    {view.module.ljust(width)}  MCP server {view.server!r}: {what}")
    example = next((v.module for v in views if v.listing is not None), "<module>")
    doc = "\n".join(
        [
            f"The MCP servers user {owner!r} can call from code: each is a module here.",
            "",
            f"    from tools.mcp import {example}",
            f"    help({example})   # its functions, arguments and results",
            "",
            "Modules:" if rows else "No MCP servers are configured for this user.",
            *rows,
            "",
            _wrap(
                "Calls run on the host, which holds the servers' credentials: keep large data "
                "in variables and files here instead of printing it."
            ),
            "",
            RESULTS_DOC,
            "",
            NAMING_DOC,
        ]
    )
    modules = [v.module for v in views]
    configured = ", ".join(modules) or "none"
    return (
        f"{_doc_literal(doc, '')}\n\n"
        "import importlib as _importlib\n\n"
        "from ._runtime import McpToolError\n\n"
        f'__all__ = ["McpToolError", *{modules!r}]\n'
        f"_MODULES = frozenset({modules!r})\n\n\n"
        "def __getattr__(name: str):\n"
        "    if name in _MODULES:\n"
        '        return _importlib.import_module(f"{__name__}.{name}")\n'
        '    if name.startswith("__"):\n'
        "        raise AttributeError(name)\n"
        "    raise ModuleNotFoundError(\n"
        f'        f"tools.mcp has no server module {{name!r}}; configured for you: {configured}"\n'
        '        " (see help(tools.mcp))",\n'
        '        name=f"{__name__}.{name}",\n'
        "    )\n"
    )


def tree_version(files: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + files[path].encode() + b"\0")
    return digest.hexdigest()[:16]


def render_tree(
    owner: str, views: Sequence[ServerView], redact: Callable[[str], str] = lambda s: s
) -> tuple[dict[str, str], dict[str, list[FunctionStub]]]:
    """Every file of one user's `/tools/mcp` and the functions of each module (redacted, and
    valid UTF-8 whatever the server sent: code literals are ASCII-escaped reprs, so only
    docstring text can hold a lone surrogate, which becomes "?")."""

    def safe(text: str) -> str:
        return redact(text).encode("utf-8", "replace").decode("utf-8")

    files: dict[str, str] = {}
    made: dict[str, list[FunctionStub]] = {}
    for view in views:
        text, stubs = render_module(view)
        files[f"{view.module}.py"] = safe(text)
        made[view.module] = [
            dataclasses.replace(
                s, summary=safe(s.summary), docstring=safe(s.docstring), source=safe(s.source)
            )
            for s in stubs
        ]
    counts = {module: len(stubs) for module, stubs in made.items()}
    files["__init__.py"] = safe(render_init(owner, views, counts))
    return files, made
