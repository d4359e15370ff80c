"""The MCP servers file (`APP_MCP_SERVERS_FILE`): the format Claude Desktop, Cursor and Claude
Code read, so people paste their blocks as they are.

    {"mcpServers": {
        "time":   {"command": "uvx", "args": ["mcp-server-time"], "env": {"TZ": "Etc/UTC"}},
        "github": {"type": "http", "url": "https://api.example.com/mcp/",
                   "headers": {"Authorization": "Bearer ${GITHUB_TOKEN}"},
                   "users": ["alice"]}}}

- stdio: `command`, `args`, `env`, `cwd` (`"type": "stdio"` may be given). A stdio server gets
  only `HOME LOGNAME PATH SHELL TERM USER` of the app's environment plus its own `env`.
- streamable HTTP: `url` and `headers` (`"type": "http"`, or no type when `url` is given).
  `"type": "sse"` (the older HTTP+SSE transport) is refused.
- `${VAR}` and `${VAR:-default}` in `command`, `args`, `env`, `url` and `headers` expand from the
  host's environment (the app loads `.env` into it at start); the default applies when VAR is
  unset or empty. An undefined VAR without default makes that server misconfigured (reported,
  its module says why); the other servers work.
- `"users": ["alice", ...]` limits a server to those app users (absent = every user);
  `"disabled": true` leaves it out. Other keys (e.g. `autoApprove`) are ignored.

A missing file means no servers. A malformed one raises `McpConfigError` naming the file, the
server and the field (the app refuses to start). A server whose URL is this app's own MCP
endpoint is refused (misconfigured): a call through the bridge would wait on its own session.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from .errors import McpConfigError

logger = logging.getLogger(__name__)

Transport = Literal["stdio", "http"]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_HTTP_TYPES = {"http", "streamable-http", "streamable_http", "streamableHttp"}
_KNOWN_KEYS = {"type", "command", "args", "env", "cwd", "url", "headers", "users", "disabled"}
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "::", "ip6-localhost"}
_NOT_SECRET = re.compile(r"^(?:\d{1,6}|true|false|yes|no|on|off|none|null)$", re.IGNORECASE)


@dataclass(frozen=True)
class ServerConfig:
    """One configured MCP server, its `${VAR}`s expanded.

    `problem` is non-empty when the server cannot be used (an undefined variable, our own
    endpoint): it is reported and its module says so, and it is never started. `secrets` are the
    values that must never appear in an error text, a log line or a stub (env and header values,
    and whatever a `${VAR}` expanded to)."""

    name: str
    transport: Transport
    command: str = ""
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    users: tuple[str, ...] | None = None  # None = every user
    disabled: bool = False
    problem: str = ""
    secrets: tuple[str, ...] = ()
    fingerprint: str = ""  # hash of the server's entry: its catalog key

    def allows(self, owner: str) -> bool:
        """Whether app user `owner` may use this server (disabled ones: nobody)."""
        return not self.disabled and (self.users is None or owner in self.users)

    @property
    def usable(self) -> bool:
        return not self.disabled and not self.problem


@dataclass(frozen=True)
class ServersConfig:
    """Every server of the file, in the file's order."""

    path: Path | None
    servers: tuple[ServerConfig, ...] = ()

    def get(self, name: str) -> ServerConfig | None:
        return next((s for s in self.servers if s.name == name), None)

    def secrets(self) -> tuple[str, ...]:
        return tuple(sorted({v for s in self.servers for v in s.secrets}, key=len, reverse=True))


def _fail(path: Path | str, where: str, message: str) -> McpConfigError:
    return McpConfigError(f"{path}: {where}: {message}")


class _Expander:
    """Expands `${VAR}` / `${VAR:-default}` and remembers what it expanded (secrets) and what was
    missing (problems)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.expanded: list[str] = []
        self.missing: list[str] = []

    def __call__(self, text: str, where: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            value = self.environ.get(name, "")
            if not value:
                if default is None:
                    self.missing.append(f"${{{name}}} in {where} is not set")
                    return ""
                value = default
            self.expanded.append(value)
            return value

        return _VAR.sub(replace, text)


def _string(path: Path, where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(path, where, f"must be a string, not {type(value).__name__}")
    return value


def _string_map(path: Path, where: str, name: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _fail(
            path,
            f"{where}: field {name!r}",
            f"must be an object of strings, not {type(value).__name__}",
        )
    for key, item in value.items():
        _string(path, f"{where}: field '{name}.{key}'", item)
    return dict(value)


def _normalized(url: str) -> tuple[str, str, int | None, str]:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host in _LOOPBACK or host.startswith("127."):
        host = "loopback"
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        port = None
    return parts.scheme, host, port, parts.path.rstrip("/")


def is_own_endpoint(url: str, own_urls: Iterable[str]) -> bool:
    """Whether `url` points at one of this app's own MCP endpoints (any loopback spelling)."""
    _, host, port, path = _normalized(url)
    for own in own_urls:
        _, o_host, o_port, o_path = _normalized(own)
        if (host, port) == (o_host, o_port) and (path + "/").startswith(o_path + "/"):
            return True
    return False


def own_urls(host: str, port: int, public_url: str = "") -> list[str]:
    """This app's own MCP endpoint as its servers file might name it: `/mcp/` at APP_HOST:APP_PORT
    (any loopback spelling counts the same) and at APP_PUBLIC_URL."""
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host or "127.0.0.1"
    urls = [f"http://{shown}:{port}/mcp/"]
    if public_url:
        urls.append(public_url.rstrip("/") + "/mcp/")
    return urls


def _secret_values(values: Iterable[str]) -> list[str]:
    found: list[str] = []
    for value in values:
        value = value.strip()
        if len(value) < 4 or _NOT_SECRET.match(value):
            continue
        found.append(value)
        _, _, token = value.partition(" ")  # "Bearer abc": the token alone too
        if token.strip() and len(token.strip()) >= 4:
            found.append(token.strip())
    return found


def _parse_server(
    path: Path, name: str, raw: Any, environ: Mapping[str, str], own_urls: Iterable[str]
) -> ServerConfig:
    where = f"server {name!r}"
    if not name.strip():
        raise _fail(path, "mcpServers", "a server name must not be empty")
    if not isinstance(raw, dict):
        raise _fail(path, where, f"must be an object, not {type(raw).__name__}")
    unknown = sorted(set(raw) - _KNOWN_KEYS)
    if unknown:
        logger.debug("%s: %s: ignoring keys %s", path, where, ", ".join(unknown))
    kind = raw.get("type")
    if kind is not None:
        kind = _string(path, f"{where}: field 'type'", kind)
    if kind == "sse":
        raise _fail(
            path,
            f"{where}: field 'type'",
            "'sse' (the old HTTP+SSE transport) is not supported; use the server's streamable "
            'HTTP endpoint with "type": "http"',
        )
    if kind is not None and kind != "stdio" and kind not in _HTTP_TYPES:
        raise _fail(path, f"{where}: field 'type'", f"unknown type {kind!r} (use stdio or http)")
    has_url, has_command = "url" in raw, "command" in raw
    if has_url and has_command:
        raise _fail(path, where, "give either 'command' (stdio) or 'url' (http), not both")
    transport: Transport
    if kind == "stdio" or (kind is None and has_command):
        transport = "stdio"
        if not has_command:
            raise _fail(path, where, "a stdio server needs 'command'")
    elif kind in _HTTP_TYPES or (kind is None and has_url):
        transport = "http"
        if not has_url:
            raise _fail(path, where, "an http server needs 'url'")
    else:
        raise _fail(path, where, "needs 'command' (a stdio server) or 'url' (streamable HTTP)")

    users: tuple[str, ...] | None = None
    if "users" in raw:
        listed = raw["users"]
        if not isinstance(listed, list) or not all(isinstance(u, str) for u in listed):
            raise _fail(path, f"{where}: field 'users'", "must be a list of user names")
        users = tuple(listed)
    disabled = raw.get("disabled", False)
    if not isinstance(disabled, bool):
        raise _fail(path, f"{where}: field 'disabled'", "must be true or false")

    expand = _Expander(environ)
    command, args, cwd, url = "", (), None, ""
    env: dict[str, str] = {}
    headers: dict[str, str] = {}
    if transport == "stdio":
        command = expand(_string(path, f"{where}: field 'command'", raw["command"]), "command")
        raw_args = raw.get("args", [])
        if not isinstance(raw_args, list):
            raise _fail(path, f"{where}: field 'args'", "must be a list of strings")
        args = tuple(
            expand(_string(path, f"{where}: field 'args[{i}]'", a), f"args[{i}]")
            for i, a in enumerate(raw_args)
        )
        env = {
            k: expand(v, f"env.{k}")
            for k, v in _string_map(path, where, "env", raw.get("env", {})).items()
        }
        if raw.get("cwd") is not None:
            cwd = _string(path, f"{where}: field 'cwd'", raw["cwd"])
        for key in ("url", "headers"):
            if key in raw:
                raise _fail(path, f"{where}: field {key!r}", "only http servers take it")
    else:
        url = expand(_string(path, f"{where}: field 'url'", raw["url"]), "url")
        headers = {
            k: expand(v, f"headers.{k}")
            for k, v in _string_map(path, where, "headers", raw.get("headers", {})).items()
        }
        for key in ("command", "args", "env", "cwd"):
            if key in raw:
                raise _fail(path, f"{where}: field {key!r}", "only stdio servers take it")

    problem = ""
    if expand.missing:
        problem = "; ".join(expand.missing) + " (define it in the environment or .env)"
    elif transport == "stdio" and not command.strip():
        problem = "'command' is empty"
    elif transport == "http":
        scheme = urlsplit(url).scheme
        if scheme not in {"http", "https"} or not urlsplit(url).hostname:
            problem = "'url' must be an http:// or https:// address"
        elif is_own_endpoint(url, own_urls):
            problem = (
                "'url' is this app's own MCP endpoint: code mode cannot call itself (a call "
                "would wait on the session it came from)"
            )
    secrets = _secret_values([*env.values(), *headers.values(), *expand.expanded])
    fingerprint = hashlib.sha256(
        json.dumps(
            {"name": name, "raw": raw, "command": command, "args": args, "url": url, "cwd": cwd},
            sort_keys=True,
            default=str,
        ).encode()
    ).hexdigest()[:16]
    return ServerConfig(
        name=name,
        transport=transport,
        command=command,
        args=args,
        env=env,
        cwd=cwd,
        url=url,
        headers=headers,
        users=users,
        disabled=disabled,
        problem=problem,
        secrets=tuple(dict.fromkeys(secrets)),
        fingerprint=fingerprint,
    )


def parse_servers(
    text: str,
    path: Path,
    environ: Mapping[str, str],
    own_urls: Iterable[str] = (),
) -> ServersConfig:
    """Parse the text of a servers file (see the module docstring)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, f"line {exc.lineno} column {exc.colno}", f"not JSON ({exc.msg})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("mcpServers"), dict):
        raise _fail(path, "top level", 'must be an object with "mcpServers": {"<name>": {...}}')
    own = list(own_urls)
    servers = tuple(
        _parse_server(path, str(name), raw, environ, own)
        for name, raw in data["mcpServers"].items()
    )
    for server in servers:
        if server.problem:
            logger.warning("MCP server %r is misconfigured: %s", server.name, server.problem)
    return ServersConfig(path=path, servers=servers)


def load_servers(
    path: Path, environ: Mapping[str, str], own_urls: Iterable[str] = ()
) -> ServersConfig:
    """Read the servers file; a missing file is no servers.

    Args:
        path: `APP_MCP_SERVERS_FILE`.
        environ: where `${VAR}` comes from (the app passes `os.environ`, `.env` loaded).
        own_urls: this app's own MCP endpoint URLs (as people and the app reach it), refused.

    Raises:
        McpConfigError: the file is malformed (names the file, the server and the field).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ServersConfig(path=path)
    except (OSError, UnicodeDecodeError) as exc:
        raise McpConfigError(f"{path}: cannot be read ({exc})") from exc
    return parse_servers(text, path, environ, own_urls)
