"""Code mode's tier: the hub against real MCP servers (no Docker).

The third-party servers come from `make mcp-servers` (.mcp-servers/ in the project); a missing
one fails the tier in CI (CI=true) and skips its tests elsewhere. Our own hostile servers are
scripts in servers/, run with this interpreter.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from code_mode import McpHub, parse_servers
from executor.bridge import CallContext, CallOutcome
from settings import PROJECT_ROOT
from tests.conftest import IN_CI
from tests.support import free_port
from tests.support.engine_cases import (  # noqa: F401 - the sandbox cases run on each engine
    engine,
    executor,
    make_executor,
    pytest_collection_modifyitems,
    pytest_generate_tests,
)

SERVERS = Path(__file__).parent / "servers"
INSTALLED = PROJECT_ROOT / ".mcp-servers"
HOSTILE = [sys.executable, str(SERVERS / "hostile.py")]
PYTHON = sys.executable
TOKEN = "tok-http-6d1f0a9e3b"  # the streamable-HTTP test server's bearer token


def installed(relative: str) -> str:
    """The path of a server `make mcp-servers` installs; fail in CI, skip elsewhere if absent."""
    path = INSTALLED / relative
    if not path.exists():
        message = f"{path} is missing: run `make mcp-servers`"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return str(path)


@pytest.fixture
def time_server() -> str:
    return installed("py/bin/mcp-server-time")


@pytest.fixture
def git_server() -> str:
    return installed("py/bin/mcp-server-git")


@pytest.fixture
def everything_server() -> str:
    return installed("node/node_modules/.bin/mcp-server-everything")


def config(servers: dict[str, Any], environ: dict[str, str] | None = None, own=()):
    return parse_servers(json.dumps({"mcpServers": servers}), Path("test.json"), environ or {}, own)


@pytest.fixture
def make_hub(tmp_path) -> Iterator[Any]:
    """Factory for hubs over a servers dict; each closed at the end of the test."""
    made: list[McpHub] = []

    def make(servers: dict[str, Any], environ: dict[str, str] | None = None, **kwargs) -> McpHub:
        kwargs.setdefault("catalog_path", tmp_path / "mcp_catalog.json")
        hub = McpHub(config(servers, environ), **kwargs)
        made.append(hub)
        return hub

    yield make
    for hub in made:
        hub.close()


def ctx(owner: str = "alice", session: str = "s1") -> CallContext:
    return CallContext(key=f"{owner}/{session}", owner=owner, session=session)


def call(hub: McpHub, server: str, tool: str, arguments: dict | None = None, owner="alice"):
    """One bridged call made from a loop of its own (as the executor's bridge loop does)."""
    return asyncio.run(hub.call(ctx(owner), server, tool, arguments or {}))


def ok(outcome: CallOutcome) -> Any:
    assert outcome.ok, outcome.error
    return outcome.value


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def hostile(env: dict[str, str] | None = None, **extra) -> dict[str, Any]:
    entry: dict[str, Any] = {"command": HOSTILE[0], "args": HOSTILE[1:]}
    if env:
        entry["env"] = env
    entry.update(extra)
    return entry


def start_http_server(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [PYTHON, str(SERVERS / "http_server.py"), str(port), TOKEN],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the HTTP MCP server did not start")


@pytest.fixture
def http_server():
    port = free_port()
    process = start_http_server(port)
    holder = {"port": port, "process": process}
    yield holder
    for p in (holder["process"],):
        p.terminate()
        p.wait(timeout=10)


def remote(port: int, token_var: str = "REMOTE_TOKEN") -> dict:
    return {
        "type": "http",
        "url": f"http://127.0.0.1:{port}/mcp",
        "headers": {"Authorization": f"Bearer ${{{token_var}}}"},
    }
