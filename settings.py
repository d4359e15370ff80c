"""One settings object for the whole app, read from the environment (and `.env`).

Defaults live here and only here, as dataclass field defaults; `.env.example` mirrors them
(a unit test keeps the two in step). Each field of `ExecutorSettings` is read from
`EXECUTOR_<FIELD>`, each field of `Settings` from `APP_<FIELD>`. Sizes (fields ending in
`_bytes`) accept suffixes: `512k`, `256m`, `1g`.

Every value is checked when a settings object is made, whether `load_settings` reads it from the
environment or a caller passes it (`ExecutorSettings(...)`, `DockerExecutionClient(**settings)`),
and every problem is reported at once, as one `ConfigError` naming each variable, its value and
what is allowed. The checks are declared with the fields, so a new field is checked by its type
and, where needed, one annotation:

- a closed choice is a `Literal[...]` type: any other value is refused (no silent fallback);
- numbers are never negative; `Annotated[int, Range(...)]` narrows that (`Range(min=16)`);
- `Annotated[str, Matches(regex, allowed)]` for names and labels, `Rule(check, allowed)` for the
  rest; `_RULES` of a class holds checks that span fields (tmpfs sizes against the memory limit).

This module imports nothing from our packages: everything else sits on top of it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin, get_type_hints

PROJECT_ROOT = Path(__file__).resolve().parent

# Every entry point (`make run`, `make doctor`, the CLI, `python -m mcp_server`, `adk run agent`)
# refuses bad settings with `refusal(exc)` on stderr and this exit code, having made nothing.
EXIT_CONFIG = 2

# The one user of the app when login is off (the web UI's, and the MCP stdio server's default).
LOCAL_USER = "local"

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_DNS_NAME = rf"{_DNS_LABEL}(\.{_DNS_LABEL})*"

# Closed choices, named so that code given a plain value (an engine built directly) can check it.
EngineName = Literal["docker", "kubernetes"]
WorkspaceQuotaMode = Literal["auto", "loop", "off"]
AgentTools = Literal["direct", "mcp"]
ImagePullPolicy = Literal["IfNotPresent", "Always", "Never"]

_DERIVED = {"google_api_key_set"}  # computed in load_settings, not read from APP_*


# -- errors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One unusable setting: the variable, the value it has, and what is allowed instead."""

    variable: str  # several joined by " + " for a check that spans fields
    value: str  # as given: the environment's text, or the repr of a value passed in code
    allowed: str
    joint: bool = False  # a check across fields: `allowed` names each variable and value

    def __str__(self) -> str:
        if self.joint:
            return self.allowed
        return f"{self.variable}={self.value} cannot be used: expected {self.allowed}"


class ConfigError(ValueError):
    """Settings that cannot be used; the message names each variable, its value and what is
    allowed (`problems` lists them one by one where the settings checks found them)."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)

    @classmethod
    def of(cls, problems: Sequence[Problem]) -> ConfigError:
        if len(problems) == 1:
            return cls(f"{problems[0]}; see .env.example", problems)
        listed = "\n".join(f"  - {p}" for p in problems)
        return cls(
            f"{len(problems)} settings cannot be used (see .env.example):\n{listed}", problems
        )


# -- rules declared on fields ------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """A number within bounds: `min`/`max` inclusive, `above` exclusive."""

    min: float | None = None
    max: float | None = None
    above: float | None = None

    def allowed(self) -> str:
        if self.min is not None and self.max is not None:
            return f"a number from {self.min:g} to {self.max:g}"
        if self.max is not None:
            return f"a number up to {self.max:g}"
        if self.min is not None:
            return f"a number of at least {self.min:g}"
        return f"a number above {self.above:g}" if self.above is not None else "a number"

    def ok(self, value: float) -> bool:
        return not (
            (self.min is not None and value < self.min)
            or (self.max is not None and value > self.max)
            or (self.above is not None and value <= self.above)
        )


@dataclass(frozen=True)
class Matches:
    """A string the whole of which matches `pattern`; `allowed` says so in words."""

    pattern: str
    allowed: str

    def ok(self, value: str) -> bool:
        return re.fullmatch(self.pattern, value) is not None


@dataclass(frozen=True)
class Rule:
    """Any other check of one value: `check(value)` is True when it may be used."""

    check: Callable[[Any], bool]
    allowed: str

    def ok(self, value: Any) -> bool:
        return self.check(value)


def _egress_ok(text: str) -> bool:
    """EXECUTOR_EGRESS_ALLOW parses (the parser lives with the egress policy; imported here,
    when a value is checked, not when this module is)."""
    from executor.egress.policy import Allowlist

    try:
        Allowlist.parse(text)
    except ValueError:
        return False
    return True


_NON_NEGATIVE = Range(min=0)
_POSITIVE = Range(above=0)
_AT_LEAST_1 = Range(min=1)


@dataclass(frozen=True)
class Across:
    """A check that spans fields: `problem(values, show)` says what is wrong (None if nothing);
    `show(name)` renders a field as `VARIABLE=value` for the message."""

    fields: tuple[str, ...]
    problem: Callable[[Mapping[str, Any], Callable[[str], str]], str | None]


def _tmpfs_within_memory(values: Mapping[str, Any], show: Callable[[str], str]) -> str | None:
    total = values["tmp_size_bytes"] + values["home_size_bytes"] + values["shm_size_bytes"]
    if total * 2 <= values["memory_limit_bytes"]:
        return None
    return (
        f"{show('tmp_size_bytes')}, {show('home_size_bytes')} and {show('shm_size_bytes')} add "
        f"up to {_size(total)}, more than half of {show('memory_limit_bytes')}: tmpfs is charged "
        "to the memory limit, so a full /tmp would leave commands no memory. Lower the tmpfs "
        "sizes or raise the memory limit"
    )


def _pool_ceiling(values: Mapping[str, Any], show: Callable[[str], str]) -> str | None:
    if values["pool_max_size"] >= values["pool_size"]:
        return None
    return f"{show('pool_max_size')} is below {show('pool_size')}: the ceiling must be >= the floor"


def _flood_above_limit(values: Mapping[str, Any], show: Callable[[str], str]) -> str | None:
    if values["output_flood_bytes"] >= values["output_limit_bytes"]:
        return None
    return (
        f"{show('output_flood_bytes')} is below {show('output_limit_bytes')}: a command is "
        "stopped for flooding only after more output than is kept"
    )


def _login_ages(values: Mapping[str, Any], show: Callable[[str], str]) -> str | None:
    if values["session_max_age_s"] >= values["session_idle_timeout_s"]:
        return None
    return f"{show('session_max_age_s')} is below {show('session_idle_timeout_s')}"


def _auth_ok(text: str) -> bool:
    for item in filter(None, (part.strip() for part in text.split(","))):
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            return False
    return True


def _proxies_ok(text: str) -> bool:
    if text.strip() == "*":
        return True
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            return False
    return True


# Lowercase so that both engines take it as it is: a Docker name prefix and label value, a
# Kubernetes label value (<= 63) with room for suffixes such as "-stdio" and "-pool-<id>".
APP_LABEL = Matches(
    r"[a-z0-9]([a-z0-9_.-]{0,38}[a-z0-9])?",
    "1 to 40 lowercase letters, digits, '-', '_' or '.', starting and ending with a letter or "
    "digit (it is a Docker/Kubernetes label value and the prefix of every name)",
)
_NAMESPACE = Matches(_DNS_LABEL, "a Kubernetes namespace: lowercase letters, digits and '-'")
_K8S_NAME = Matches(
    f"({_DNS_NAME})?", "empty or a Kubernetes object name (lowercase letters, digits, '-', '.')"
)
_NO_SPACE = Matches(r"\S+", "a name without spaces")
_URL = Matches(r"(https?://[^\s/]+(/\S*)?)?", "empty or an http:// or https:// address")
_DB_URL = Matches(
    r"([a-z][a-z0-9+]*://\S+)?",
    "empty (SQLite in APP_DATA_DIR) or a database URL, e.g. postgresql+asyncpg://user:pw@host/db",
)


# -- the settings ------------------------------------------------------------------------------


class _Checked:
    """Checks every field of a settings dataclass when it is made (see the module docstring)."""

    _PREFIX: ClassVar[str] = ""
    _RULES: ClassVar[tuple[Across, ...]] = ()

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = _normalised(_base(hints[f.name]), getattr(self, f.name))
            object.__setattr__(self, f.name, value)  # frozen: only here, before anyone sees it
        problems = check_values(type(self), {f.name: getattr(self, f.name) for f in _fields(self)})
        if problems:
            raise ConfigError.of(problems)


@dataclass(frozen=True)
class ExecutorSettings(_Checked):
    """Limits and wiring of the sandbox containers. Every default is the hardened one."""

    _PREFIX: ClassVar[str] = "EXECUTOR_"
    _RULES: ClassVar[tuple[Across, ...]] = (
        Across(
            ("tmp_size_bytes", "home_size_bytes", "shm_size_bytes", "memory_limit_bytes"),
            _tmpfs_within_memory,
        ),
        Across(("pool_size", "pool_max_size"), _pool_ceiling),
        Across(("output_limit_bytes", "output_flood_bytes"), _flood_above_limit),
    )

    # Where sandboxes run: "docker" (the daemon DOCKER_HOST names) or "kubernetes".
    engine: EngineName = "docker"
    image_name: Annotated[str, _NO_SPACE] = "mcp-code-executor:latest"
    # Label value and name prefix of every container and volume this app creates. Two apps
    # (or the test suite and a running app) on one daemon must use different values.
    app_label: Annotated[str, APP_LABEL] = "mcp-code-executor"
    tools_path: Path = PROJECT_ROOT / "tools"
    skills_path: Path = PROJECT_ROOT / "skills"
    # Container limits. tmpfs sizes count against memory_limit: their sum is at most half of it.
    memory_limit_bytes: Annotated[int, Range(min=64 << 20)] = 1 << 30
    cpu_limit: Annotated[float, _POSITIVE] = 1.0
    pids_limit: Annotated[int, Range(min=16)] = 256
    tmp_size_bytes: Annotated[int, _POSITIVE] = 128 << 20
    home_size_bytes: Annotated[int, _POSITIVE] = 16 << 20
    shm_size_bytes: Annotated[int, _POSITIVE] = 16 << 20
    nofile_limit: Annotated[int, Range(min=64)] = 1024
    network_mode: Annotated[str, _NO_SPACE] = "none"
    runtime: str = ""  # e.g. "runsc" where gVisor is installed; empty = the daemon default
    # Workspace: one named volume per session; per-file and total limits.
    max_file_bytes: Annotated[int, _POSITIVE] = 256 << 20
    workspace_quota_bytes: Annotated[int, _POSITIVE] = 1 << 30
    # How the quota is enforced: "loop" (a sparse ext4 image per workspace, loop-mounted: the
    # kernel refuses writes past it; needs root and a local daemon), "off" (per-file limit and a
    # check on writes), or "auto" (loop where possible, else off; the log says which).
    workspace_quota_mode: WorkspaceQuotaMode = "auto"
    # Output: each of stdout/stderr is cut at output_limit_bytes; a command that floods more
    # than output_flood_bytes in total is stopped (it would only burn the daemon's CPU).
    output_limit_bytes: Annotated[int, _POSITIVE] = 1 << 20
    output_flood_bytes: Annotated[int, _POSITIVE] = 64 << 20
    read_file_limit_bytes: Annotated[int, _POSITIVE] = 1 << 20
    max_timeout_s: Annotated[float, _POSITIVE] = 3600.0
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
    pool_member_memory_bytes: Annotated[int, _POSITIVE] = 32 << 20
    pool_window_s: Annotated[float, _POSITIVE] = 120.0
    pool_refill_parallel: Annotated[int, _AT_LEAST_1] = 2
    # How often dead or outdated pool members are replaced.
    pool_check_interval_s: Annotated[float, _POSITIVE] = 10.0
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
    # Audit log: one JSON line per execution, write, upload, download and deletion; rotated by
    # size.
    audit_log: Path = PROJECT_ROOT / "data" / "audit.jsonl"
    audit_max_bytes: Annotated[int, _POSITIVE] = 10 << 20
    audit_backups: int = 5
    # Workspaces of chats unused for this many days are deleted (their stopped containers too;
    # never a running one); 0 = keep forever. Checked hourly, logged in the audit log.
    workspace_retention_days: float = 30.0
    # Lifecycle.
    idle_timeout_s: Annotated[float, _POSITIVE] = 900.0
    kill_grace_s: float = 5.0
    max_concurrency: Annotated[int, _AT_LEAST_1] = 64
    # Kubernetes engine (EXECUTOR_ENGINE=kubernetes): where and how sandbox pods are made.
    # The API is found in-cluster (service account), else through KUBECONFIG and k8s_context.
    k8s_namespace: Annotated[str, _NAMESPACE] = "mcp-code-executor"
    k8s_context: str = ""  # a kubeconfig context; empty = the current one
    # Of each workspace PVC; empty = the cluster's default class.
    k8s_storage_class: Annotated[str, _K8S_NAME] = ""
    k8s_pvc_size_bytes: int = 0  # requested size of each workspace PVC; 0 = workspace quota
    # e.g. "gvisor"; empty = the nodes' default runtime.
    k8s_runtime_class: Annotated[str, _K8S_NAME] = ""
    k8s_image_pull_policy: ImagePullPolicy = "IfNotPresent"
    # A docker-registry Secret in the namespace, if needed.
    k8s_image_pull_secret: Annotated[str, _K8S_NAME] = ""
    # A pod must be running within this (image pull included).
    k8s_start_timeout_s: Annotated[float, _POSITIVE] = 120.0
    # Controlled egress: sandboxes keep no network; their HTTP(S) proxy asks the host, which
    # allows the hosts in egress_allow ("host", "host:port", "*.domain", IPv4, "[IPv6]";
    # without a port 80 and 443; empty = no egress), refuses loopback, private, link-local and
    # reserved addresses unless an entry names the address itself, and dials the checked one.
    # Per session: connections at once, bytes per connection and per session (both ways).
    egress_allow: Annotated[
        str,
        Rule(_egress_ok, "host, host:port, *.domain, IPv4 or [IPv6] entries separated by commas"),
    ] = "pypi.org,files.pythonhosted.org"
    egress_max_connections: Annotated[int, _POSITIVE] = 32
    egress_max_connection_bytes: int = 1 << 30
    egress_max_session_bytes: int = 4 << 30
    egress_idle_timeout_s: Annotated[float, _POSITIVE] = (
        60.0  # a connection with no bytes either way this long ends
    )
    egress_connect_timeout_s: Annotated[float, _POSITIVE] = (
        10.0  # name resolution and TCP connect together
    )


@dataclass(frozen=True)
class Settings(_Checked):
    """Settings of the app as a whole."""

    _PREFIX: ClassVar[str] = "APP_"
    _RULES: ClassVar[tuple[Across, ...]] = (
        Across(("session_idle_timeout_s", "session_max_age_s"), _login_ages),
    )

    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    # Sessions (SQLite), logs and other state live here.
    data_dir: Path = PROJECT_ROOT / "data"
    # Chats in another database instead of SQLite in data_dir, e.g. for app replicas:
    # postgresql+asyncpg://user:password@host/db (needs the postgres extra).
    session_db_url: Annotated[str, _DB_URL] = ""
    # Model: empty = Gemini (gemini_model) when GOOGLE_API_KEY or GEMINI_API_KEY is set, else the
    # offline model. Otherwise any model string ADK resolves: "gemini-2.5-pro", "offline",
    # "openai/gpt-4o" (needs the litellm extra and that provider's key).
    model: str = ""
    gemini_model: Annotated[str, _NO_SPACE] = "gemini-2.5-flash"
    # More models offered for new chats (comma separated model strings), e.g.
    # "gemini-2.5-pro,openai/gpt-4o-mini"; the header's menu switches between them.
    extra_models: str = ""
    # A model call refused for load (429, 5xx) is retried this many times, waiting
    # model_retry_base_s doubling each time (with jitter), or what the server asks for.
    model_retries: Annotated[int, Range(min=0, max=20)] = 3
    model_retry_base_s: float = 1.0
    # How the agent reaches its sandbox tools: "direct" (in-process function tools) or "mcp"
    # (ADK's McpToolset against this app's own MCP endpoint, the same tools any client gets).
    agent_tools: AgentTools = "direct"
    # Images a step makes in /workspace are shown in the chat (and to models that read
    # images) up to this size each.
    inline_image_max_bytes: int = 2 << 20
    # Most characters of each tool output (stdout, stderr, file text) handed to the model.
    tool_output_limit_chars: Annotated[int, Range(min=100)] = 20_000
    # Web UI.
    host: Annotated[str, Matches(r"[^\s/]*", "an address or host name to listen on")] = "127.0.0.1"
    port: Annotated[int, Range(min=1, max=65535)] = 7860
    # Largest file a person may upload in the chat (bigger ones are refused, nothing is stored).
    upload_limit_bytes: Annotated[int, _POSITIVE] = 50 << 20
    # Login. Users with hashed passwords live in users_file (`mcp-code-executor user add NAME`);
    # APP_AUTH plain pairs ("alice:secret,bob:other") still work for a quick local try. With
    # neither, there is no login and one local user (LOCAL_USER).
    auth: Annotated[str, Rule(_auth_ok, "user:password pairs separated by commas")] = ""
    users_file: Path = PROJECT_ROOT / "data" / "users.toml"
    # Serving beyond loopback without login is refused unless this is true (loud warning then).
    allow_unauthenticated: bool = False
    # A login session ends after this many seconds without a request, and at the latest after
    # session_max_age_s.
    session_idle_timeout_s: Annotated[float, _POSITIVE] = 8 * 3600.0
    session_max_age_s: Annotated[float, _POSITIVE] = 7 * 24 * 3600.0
    # Wrong passwords (per user and per client address) before the exponential back-off starts.
    login_max_failures: Annotated[int, _AT_LEAST_1] = 5
    # Addresses whose X-Forwarded-For / X-Forwarded-Proto headers are believed (uvicorn's
    # forwarded_allow_ips): your HTTPS reverse proxy. "*" trusts anyone, which lets a client
    # pick its own address.
    trusted_proxies: Annotated[
        str, Rule(_proxies_ok, "IP addresses or networks separated by commas, or *")
    ] = "127.0.0.1,::1"
    # The address people reach the app at (e.g. https://chat.example.org behind a proxy), for
    # the links printed at start; empty = http://APP_HOST:APP_PORT.
    public_url: Annotated[str, _URL] = ""
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
    mcp_call_timeout_s: Annotated[float, _POSITIVE] = 120.0
    mcp_idle_timeout_s: Annotated[float, _POSITIVE] = 300.0


# -- checking ----------------------------------------------------------------------------------


def _fields(cls: Any) -> list[dataclasses.Field]:
    """The fields of a settings class that hold a value (not a nested settings object)."""
    hints = _hints(cls if isinstance(cls, type) else type(cls))
    return [
        f for f in dataclasses.fields(cls) if not dataclasses.is_dataclass(_base(hints[f.name]))
    ]


def _defaults(cls: type) -> dict[str, Any]:
    out = {}
    for f in _fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls, include_extras=True)
    return _HINTS[cls]


def _base(hint: Any) -> Any:
    """The plain type of a hint (`Annotated[int, ...]` -> int; a Literal stays a Literal)."""
    return get_args(hint)[0] if get_origin(hint) is Annotated else hint


def _rules(hint: Any) -> list[Any]:
    return list(get_args(hint)[1:]) if get_origin(hint) is Annotated else []


def _normalised(kind: Any, value: Any) -> Any:
    """What code may pass loosely, made exact: a str for a Path, an int for a float."""
    if kind is Path and isinstance(value, str):
        return Path(value).expanduser()
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _type_problem(kind: Any, value: Any) -> str | None:
    if get_origin(kind) is Literal:
        choices = get_args(kind)
        return None if value in choices else "one of " + ", ".join(map(str, choices))
    if kind is bool:
        return None if isinstance(value, bool) else "true or false"
    if kind is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "a whole number"
    if kind is float:
        if isinstance(value, float) and math.isfinite(value):
            return None
        return "a finite number"
    if kind is str:
        return None if isinstance(value, str) else "text"
    if kind is Path:
        return None if isinstance(value, Path) else "a path"
    if dataclasses.is_dataclass(kind):
        return None if isinstance(value, kind) else f"a {kind.__name__}"
    return None


def _shown(name: str, value: Any, raw: Mapping[str, str]) -> str:
    if name in raw:
        return repr(raw[name])
    if name.endswith("_bytes") and isinstance(value, int) and not isinstance(value, bool):
        return _size(value)
    return repr(value)


def _size(n: int) -> str:
    for unit, factor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n:,} bytes" if n >= 1 << 10 else str(n)


def check_values(
    cls: type, values: Mapping[str, Any], raw: Mapping[str, str] | None = None
) -> list[Problem]:
    """Every problem of `values` (field name -> value) against the rules of `cls`.

    Fields missing from `values` are not checked (nor the `_RULES` that need them): the loader
    leaves out what it could not parse, having reported that already. `raw` holds the text a
    value was parsed from, so a message shows what the operator wrote."""
    raw = raw or {}
    prefix = cls._PREFIX  # type: ignore[attr-defined]
    hints = _hints(cls)
    problems: list[Problem] = []
    good: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in values or dataclasses.is_dataclass(_base(hints[f.name])):
            continue
        value = values[f.name]
        variable = f"{prefix}{f.name.upper()}"
        kind = _base(hints[f.name])
        allowed = _type_problem(kind, value)
        if allowed is None:
            rules = _rules(hints[f.name])
            if kind in (int, float) and not any(isinstance(r, Range) for r in rules):
                rules.append(_NON_NEGATIVE)
            allowed = next((_allowed(r) for r in rules if not r.ok(value)), None)
        if allowed is not None:
            problems.append(Problem(variable, _shown(f.name, value, raw), allowed))
        else:
            good[f.name] = value
    for rule in cls._RULES:  # type: ignore[attr-defined]
        if all(name in good for name in rule.fields):

            def show(name: str) -> str:
                return f"{prefix}{name.upper()}={_shown(name, good[name], raw)}"

            message = rule.problem(good, show)
            if message is not None:
                variables = " + ".join(f"{prefix}{name.upper()}" for name in rule.fields)
                values_shown = ", ".join(_shown(n, good[n], raw) for n in rule.fields)
                problems.append(Problem(variables, values_shown, message, joint=True))
    return problems


def _allowed(rule: Any) -> str:
    return rule.allowed() if isinstance(rule, Range) else rule.allowed


# -- loading -----------------------------------------------------------------------------------


def _parse_size(text: str) -> int:
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError("a size such as 1048576, 512k, 256m or 1g")
    number, unit = match.groups()
    return int(float(number) * _SIZE_UNITS[unit.lower()])


def _coerce(name: str, kind: Any, raw: str) -> Any:
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off", ""}:
            return False
        raise ValueError("true or false")
    if kind is int:
        if name.endswith("_bytes"):
            return _parse_size(raw)
        try:
            return int(raw)
        except ValueError:
            raise ValueError("a whole number") from None
    if kind is float:
        try:
            return float(raw)
        except ValueError:
            raise ValueError("a number") from None
    if kind is Path:
        return Path(raw).expanduser()
    return raw


def _read_section(
    cls: type, environ: Mapping[str, str], problems: list[Problem]
) -> tuple[dict[str, Any], dict[str, str]]:
    """(values, raw texts) of the fields of `cls` set in `environ`; parse failures go to
    `problems`, and their fields are left out."""
    prefix = cls._PREFIX  # type: ignore[attr-defined]
    hints = _hints(cls)
    values: dict[str, Any] = {}
    raw: dict[str, str] = {}
    for f in dataclasses.fields(cls):
        variable = f"{prefix}{f.name.upper()}"
        kind = _base(hints[f.name])
        if f.name in _DERIVED or variable not in environ or dataclasses.is_dataclass(kind):
            continue
        raw[f.name] = environ[variable]
        try:
            values[f.name] = _coerce(f.name, kind, environ[variable])
        except ValueError as exc:
            problems.append(Problem(variable, repr(environ[variable]), str(exc)))
    return values, raw


def env_variables() -> dict[str, Any]:
    """Every variable the app reads, with its default (used to check `.env.example`)."""
    out: dict[str, Any] = {}
    for cls in (ExecutorSettings, Settings):
        for name, value in _defaults(cls).items():
            if name not in _DERIVED:
                out[f"{cls._PREFIX}{name.upper()}"] = value
    return out


def load_settings(environ: Mapping[str, str] | None = None, *, dotenv: bool = True) -> Settings:
    """Build `Settings` from the environment; `.env` fills in what the environment lacks.

    Raises:
        ConfigError: one or more values cannot be used; the message lists every one of them.
    """
    if environ is None:
        if dotenv:
            from dotenv import load_dotenv

            load_dotenv(PROJECT_ROOT / ".env", override=False)
        environ = os.environ
    problems: list[Problem] = []
    sections = {cls: _read_section(cls, environ, problems) for cls in (ExecutorSettings, Settings)}
    unparsed = {p.variable for p in problems}
    for cls, (values, raw) in sections.items():
        given = {
            name: value
            for name, value in {**_defaults(cls), **values}.items()
            if f"{cls._PREFIX}{name.upper()}" not in unparsed
        }
        problems += check_values(cls, given, raw)
    if problems:
        raise ConfigError.of(problems)
    executor = ExecutorSettings(**sections[ExecutorSettings][0])
    values = dict(sections[Settings][0])
    values["google_api_key_set"] = any(
        environ.get(name) for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY")
    ) or environ.get("GOOGLE_GENAI_USE_VERTEXAI", "").lower() in {"1", "true"}
    return Settings(executor=executor, **values)


def check_choice(variable: str, value: Any, choice: Any) -> None:
    """Raise ConfigError unless `value` is one of the Literal `choice` (for code that takes a
    plain value, such as an engine built without settings)."""
    if value not in get_args(choice):
        allowed = "one of " + ", ".join(map(str, get_args(choice)))
        raise ConfigError.of([Problem(variable, repr(value), allowed)])


def refusal(exc: ConfigError) -> str:
    """What an entry point prints when it refuses to start on bad settings."""
    return f"Refusing to start: {exc}"


def auth_pairs(settings: Settings) -> list[tuple[str, str]]:
    """The (user, password) pairs of APP_AUTH; empty when login is off."""
    pairs = []
    for item in filter(None, (part.strip() for part in settings.auth.split(","))):
        user, _, password = item.partition(":")
        pairs.append((user, password))  # the format was checked when the settings were made
    return pairs


def model_name(settings: Settings) -> str:
    """The model string in use: the explicit setting, else Gemini with a key, else offline."""
    if settings.model:
        return settings.model
    return settings.gemini_model if settings.google_api_key_set else "offline"
