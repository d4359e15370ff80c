"""One settings object for the whole app, read from the environment (and `.env`).

Defaults live here and only here, as dataclass field defaults; `.env.example` mirrors them
(a unit test keeps the two in step). Each field of `ExecutorSettings` is read from
`EXECUTOR_<FIELD>`, each field of `Settings` from `APP_<FIELD>`. Sizes (fields ending in
`_bytes`) accept suffixes: `512k`, `256m`, `1g`.

This module imports nothing from our packages: everything else sits on top of it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

PROJECT_ROOT = Path(__file__).resolve().parent

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


_DERIVED = {"google_api_key_set"}  # computed in load_settings, not read from APP_*


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class ExecutorSettings:
    """Limits and wiring of the sandbox containers. Every default is the hardened one."""

    # Where sandboxes run: "docker" (the daemon DOCKER_HOST names) or "kubernetes".
    engine: str = "docker"
    image_name: str = "mcp-code-executor:latest"
    # Label value and name prefix of every container and volume this app creates. Two apps
    # (or the test suite and a running app) on one daemon must use different values.
    app_label: str = "mcp-code-executor"
    tools_path: Path = PROJECT_ROOT / "tools"
    skills_path: Path = PROJECT_ROOT / "skills"
    # Container limits. tmpfs sizes count against memory_limit: keep their sum well below it.
    memory_limit_bytes: int = 1 << 30
    cpu_limit: float = 1.0
    pids_limit: int = 256
    tmp_size_bytes: int = 128 << 20
    home_size_bytes: int = 16 << 20
    shm_size_bytes: int = 16 << 20
    nofile_limit: int = 1024
    network_mode: str = "none"
    runtime: str = ""  # e.g. "runsc" where gVisor is installed; empty = the daemon default
    # Workspace: one named volume per session; per-file and total limits.
    max_file_bytes: int = 256 << 20
    workspace_quota_bytes: int = 1 << 30
    # How the quota is enforced: "loop" (a sparse ext4 image per workspace, loop-mounted: the
    # kernel refuses writes past it; needs root and a local daemon), "off" (per-file limit and a
    # check on writes), or "auto" (loop where possible, else off; the log says which).
    workspace_quota_mode: str = "auto"
    # Output: each of stdout/stderr is cut at output_limit_bytes; a command that floods more
    # than output_flood_bytes in total is stopped (it would only burn the daemon's CPU).
    output_limit_bytes: int = 1 << 20
    output_flood_bytes: int = 64 << 20
    read_file_limit_bytes: int = 1 << 20
    max_timeout_s: float = 3600.0
    # Resident runner: commands in a few ms over one long-lived exec, and a stateful Python
    # kernel per session. Off = every command is its own `docker exec`.
    use_runner: bool = True
    # Warm pool: containers started ahead of time (runner and Python kernel running) for new
    # sessions. pool_size is its floor (0 disables it); it grows to the number of sessions that
    # arrived in the last pool_window_s, up to pool_max_size and to what pool_memory_budget_bytes
    # holds at pool_member_memory_bytes each, and shrinks back after pool_window_s without
    # arrivals. At most pool_refill_parallel members are made at once (running sessions first).
    pool_size: int = 2
    pool_max_size: int = 64
    pool_memory_budget_bytes: int = 2 << 30
    pool_member_memory_bytes: int = 32 << 20
    pool_window_s: float = 120.0
    pool_refill_parallel: int = 2
    pool_check_interval_s: float = 10.0  # how often dead or outdated pool members are replaced
    # Containers created at once when many sessions start together (the rest wait their turn,
    # so most start sooner); 0 = 4 per CPU core (4 to 32).
    max_parallel_starts: int = 0
    # Where the executor remembers which pooled container and volume each session took.
    state_dir: Path = PROJECT_ROOT / "data" / "executor"
    # Per-user limits (the user is the owner part of a chat key); 0 = unlimited. The rate is a
    # token bucket (bursts of max_executions_burst); over a limit a call waits its turn (fair,
    # first come first served) up to limit_wait_s before it is refused.
    max_executions_per_minute: int = 60
    max_executions_burst: int = 20
    max_concurrent_executions: int = 4
    max_live_sessions: int = 10
    limit_wait_s: float = 60.0
    # Audit log: one JSON line per execution, write, upload and download; rotated by size.
    audit_log: Path = PROJECT_ROOT / "data" / "audit.jsonl"
    audit_max_bytes: int = 10 << 20
    audit_backups: int = 5
    # Workspaces of chats unused for this many days are deleted (their stopped containers too;
    # never a running one); 0 = keep forever. Checked hourly, logged in the audit log.
    workspace_retention_days: float = 30.0
    # Lifecycle.
    idle_timeout_s: float = 900.0
    kill_grace_s: float = 5.0
    max_concurrency: int = 64
    # Kubernetes engine (EXECUTOR_ENGINE=kubernetes): where and how sandbox pods are made.
    # The API is found in-cluster (service account), else through KUBECONFIG and k8s_context.
    k8s_namespace: str = "mcp-code-executor"
    k8s_context: str = ""  # a kubeconfig context; empty = the current one
    k8s_storage_class: str = ""  # of each workspace PVC; empty = the cluster's default class
    k8s_pvc_size_bytes: int = 0  # requested size of each workspace PVC; 0 = workspace quota
    k8s_runtime_class: str = ""  # e.g. "gvisor"; empty = the nodes' default runtime
    k8s_image_pull_policy: str = "IfNotPresent"
    k8s_image_pull_secret: str = ""  # a docker-registry Secret in the namespace, if needed
    k8s_start_timeout_s: float = 120.0  # a pod must be running within this (image pull included)
    # Controlled egress: sandboxes keep no network; their HTTP(S) proxy asks the host, which
    # allows the hosts in egress_allow ("host", "host:port", "*.domain", IPv4, "[IPv6]";
    # without a port 80 and 443; empty = no egress), refuses loopback, private, link-local and
    # reserved addresses unless an entry names the address itself, and dials the checked one.
    # Per session: connections at once, bytes per connection and per session (both ways).
    egress_allow: str = "pypi.org,files.pythonhosted.org"
    egress_max_connections: int = 32
    egress_max_connection_bytes: int = 1 << 30
    egress_max_session_bytes: int = 4 << 30
    egress_idle_timeout_s: float = 60.0  # a connection with no bytes either way this long ends
    egress_connect_timeout_s: float = 10.0  # name resolution and TCP connect together


@dataclass(frozen=True)
class Settings:
    """Settings of the app as a whole."""

    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    # Sessions (SQLite), logs and other state live here.
    data_dir: Path = PROJECT_ROOT / "data"
    # Chats in another database instead of SQLite in data_dir, e.g. for app replicas:
    # postgresql+asyncpg://user:password@host/db (needs the postgres extra).
    session_db_url: str = ""
    # Model: empty = Gemini (gemini_model) when GOOGLE_API_KEY or GEMINI_API_KEY is set, else the
    # offline model. Otherwise any model string ADK resolves: "gemini-2.5-pro", "offline",
    # "openai/gpt-4o" (needs the litellm extra and that provider's key).
    model: str = ""
    gemini_model: str = "gemini-2.5-flash"
    # More models offered for new chats (comma separated model strings), e.g.
    # "gemini-2.5-pro,openai/gpt-4o-mini"; the header's menu switches between them.
    extra_models: str = ""
    # A model call refused for load (429, 5xx) is retried this many times, waiting
    # model_retry_base_s doubling each time (with jitter), or what the server asks for.
    model_retries: int = 3
    model_retry_base_s: float = 1.0
    # How the agent reaches its sandbox tools: "direct" (in-process function tools) or "mcp"
    # (ADK's McpToolset against this app's own MCP endpoint, the same tools any client gets).
    agent_tools: str = "direct"
    # Images a step makes in /workspace are shown in the chat (and to models that read
    # images) up to this size each.
    inline_image_max_bytes: int = 2 << 20
    # Most characters of each tool output (stdout, stderr, file text) handed to the model.
    tool_output_limit_chars: int = 20_000
    # Web UI.
    host: str = "127.0.0.1"
    port: int = 7860
    # Largest file a person may upload in the chat (bigger ones are refused, nothing is stored).
    upload_limit_bytes: int = 50 << 20
    # Login. Users with hashed passwords live in users_file (`mcp-code-executor user add NAME`);
    # APP_AUTH plain pairs ("alice:secret,bob:other") still work for a quick local try. With
    # neither, there is no login and one local user.
    auth: str = ""
    users_file: Path = PROJECT_ROOT / "data" / "users.toml"
    # Serving beyond loopback without login is refused unless this is true (loud warning then).
    allow_unauthenticated: bool = False
    # A login session ends after this many seconds without a request, and at the latest after
    # session_max_age_s.
    session_idle_timeout_s: float = 8 * 3600.0
    session_max_age_s: float = 7 * 24 * 3600.0
    # Wrong passwords (per user and per client address) before the exponential back-off starts.
    login_max_failures: int = 5
    # Addresses whose X-Forwarded-For / X-Forwarded-Proto headers are believed (uvicorn's
    # forwarded_allow_ips): your HTTPS reverse proxy. "*" trusts anyone, which lets a client
    # pick its own address.
    trusted_proxies: str = "127.0.0.1,::1"
    # The address people reach the app at (e.g. https://chat.example.org behind a proxy), for
    # the links printed at start; empty = http://APP_HOST:APP_PORT.
    public_url: str = ""
    # Without login, each browser sees only the chats it started (a random id kept in the
    # browser): visitors of a shared demo machine do not see each other's chats.
    chats_per_browser: bool = True
    # A closed tab's sandbox is stopped (not removed) after this many seconds without a tab.
    tab_close_grace_s: float = 120.0
    # Whether a Google API key is present (read from GOOGLE_API_KEY / GEMINI_API_KEY; never stored).
    google_api_key_set: bool = False
    # Code mode: the MCP servers sandbox code calls as `tools.mcp.<server>` modules, in the
    # format of Claude Desktop, Cursor and Claude Code ({"mcpServers": {...}}; a missing file =
    # none). A call from sandbox code ends after mcp_call_timeout_s; a server unused for
    # mcp_idle_timeout_s is stopped (the next call starts it again).
    mcp_servers_file: Path = PROJECT_ROOT / "data" / "mcp_servers.json"
    mcp_call_timeout_s: float = 120.0
    mcp_idle_timeout_s: float = 300.0


def _parse_size(text: str) -> int:
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (use e.g. 1048576, 512k, 256m, 1g)")
    number, unit = match.groups()
    return int(float(number) * _SIZE_UNITS[unit.lower()])


def _coerce(name: str, annotation: Any, raw: str) -> Any:
    if annotation is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off", ""}:
            return False
        raise ValueError(f"not a boolean: {raw!r}")
    if annotation is int:
        return _parse_size(raw) if name.endswith("_bytes") else int(raw)
    if annotation is float:
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {raw!r}")
        return value
    if annotation is Path:
        return Path(raw).expanduser()
    return raw


def _read_section(cls: type, prefix: str, environ: Mapping[str, str]) -> dict[str, Any]:
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        variable = f"{prefix}{f.name.upper()}"
        if f.name in _DERIVED or variable not in environ or dataclasses.is_dataclass(hints[f.name]):
            continue
        try:
            values[f.name] = _coerce(f.name, hints[f.name], environ[variable])
        except ValueError as exc:
            raise ConfigError(f"{variable}: {exc}; see .env.example") from exc
    return values


def env_variables() -> dict[str, Any]:
    """Every variable the app reads, with its default (used to check `.env.example`)."""
    out: dict[str, Any] = {}
    for cls, prefix in ((ExecutorSettings, "EXECUTOR_"), (Settings, "APP_")):
        instance = cls()
        for f in dataclasses.fields(cls):
            value = getattr(instance, f.name)
            if f.name in _DERIVED:
                continue
            if not dataclasses.is_dataclass(value):
                out[f"{prefix}{f.name.upper()}"] = value
    return out


def load_settings(environ: Mapping[str, str] | None = None, *, dotenv: bool = True) -> Settings:
    """Build `Settings` from the environment; `.env` fills in what the environment lacks."""
    if environ is None:
        if dotenv:
            from dotenv import load_dotenv

            load_dotenv(PROJECT_ROOT / ".env", override=False)
        environ = os.environ
    executor = ExecutorSettings(**_read_section(ExecutorSettings, "EXECUTOR_", environ))
    values = _read_section(Settings, "APP_", environ)
    values["google_api_key_set"] = any(
        environ.get(name) for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY")
    ) or environ.get("GOOGLE_GENAI_USE_VERTEXAI", "").lower() in {"1", "true"}
    return Settings(executor=executor, **values)


def auth_pairs(settings: Settings) -> list[tuple[str, str]]:
    """The (user, password) pairs of APP_AUTH; empty when login is off."""
    pairs = []
    for item in filter(None, (part.strip() for part in settings.auth.split(","))):
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            raise ConfigError("APP_AUTH: use user:password pairs separated by commas")
        pairs.append((user, password))
    return pairs


def model_name(settings: Settings) -> str:
    """The model string in use: the explicit setting, else Gemini with a key, else offline."""
    if settings.model:
        return settings.model
    return settings.gemini_model if settings.google_api_key_set else "offline"
