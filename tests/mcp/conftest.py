"""The MCP endpoint served for real: the app's composition (FastAPI + MCP at /mcp + Gradio at /)
under uvicorn on a free port, over a real executor and a real ChatService; clients are the
official `mcp` SDK's.

The server runs in its own thread and event loop for the whole module (one executor, few
containers). Test code that must touch the server's objects (the ChatService, the executor)
runs it on that loop with `env.on_server(coro)`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn

from code_mode import McpHub, parse_servers, surface_index
from executor import DockerExecutionClient
from mcp_server import (
    Sandboxes,
    SandboxStore,
    ServiceChats,
    TokenStore,
    build_http_app,
    build_mcp,
    mount_mcp,
)
from settings import ExecutorSettings, load_settings
from tests.code_mode.conftest import installed
from tests.conftest import NO_EXTRAS
from tests.support import free_port

T = TypeVar("T")


def compose_app(mcp_app: Any, blocks: Any) -> Any:
    """The app's composition, exactly as the lead's frontend does it: FastAPI, MCP mounted at
    /mcp first (lifespan composed, /mcp -> 307 /mcp/), then Gradio at / (it wraps the lifespan
    it finds, so both run)."""
    import gradio as gr
    from fastapi import FastAPI

    app = FastAPI()
    mount_mcp(app, mcp_app, "/mcp")
    return gr.mount_gradio_app(app, blocks, path="/")


@dataclass
class McpEnv:
    url: str  # the endpoint, with the trailing slash
    port: int
    executor: DockerExecutionClient
    service: Any  # agent.service.ChatService
    tokens: TokenStore
    audit_log: Path
    app_label: str
    loop: asyncio.AbstractEventLoop
    token: dict[str, str] = field(default_factory=dict)  # user -> plaintext token

    async def on_server(self, coro: Awaitable[T]) -> T:
        """Run `coro` on the server's event loop (where its objects live) and await it here."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def audit(self) -> list[dict]:
        if not self.audit_log.exists():
            return []
        return [json.loads(line) for line in self.audit_log.read_text().splitlines() if line]


@pytest.fixture(scope="module")
def mcp_env(docker_client, app_label, tmp_path_factory):
    import gradio as gr

    from agent.service import ChatService

    data = tmp_path_factory.mktemp("mcp-data")
    label = f"{app_label}-mcp"
    settings = dataclasses.replace(
        load_settings({}),  # hermetic: no .env; the offline model
        executor=ExecutorSettings(
            app_label=label, state_dir=data / "executor", audit_log=data / "audit.jsonl"
        ),
        data_dir=data,
    )
    # Code mode for alice only: the endpoint is a gateway to the servers the app has.
    servers = {"time": {"command": installed("py/bin/mcp-server-time"), "users": ["alice"]}}
    config = parse_servers(json.dumps({"mcpServers": servers}), data / "servers.json", {}, ())
    hub = McpHub(config, catalog_path=data / "mcp_catalog.json")
    executor = DockerExecutionClient.from_settings(settings.executor, tool_bridge=hub, **NO_EXTRAS)
    service = ChatService(settings, executor=executor)
    tokens = TokenStore(data / "mcp.db")
    sandboxes = Sandboxes(SandboxStore(data / "mcp.db"), executor, ServiceChats(service))
    mcp = build_mcp(
        executor, tokens, sandboxes, output_limit_chars=20_000, index=surface_index(executor)
    )
    with gr.Blocks() as blocks:
        gr.Markdown("chat UI stand-in")
    port = free_port()
    app = compose_app(build_http_app(mcp, host="127.0.0.1"), blocks)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    loop = asyncio.new_event_loop()

    def serve() -> None:
        loop.run_until_complete(server.serve())
        leftovers = asyncio.all_tasks(loop)  # Gradio's queue and SSE watchers outlive serve()
        for task in leftovers:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    for _ in range(400):
        if server.started or not thread.is_alive():
            break
        threading.Event().wait(0.05)
    assert server.started, "the MCP test server did not start"
    env = McpEnv(
        url=f"http://127.0.0.1:{port}/mcp/",
        port=port,
        executor=executor,
        service=service,
        tokens=tokens,
        audit_log=data / "audit.jsonl",
        app_label=label,
        loop=loop,
    )
    for user in ("alice", "bob"):
        env.token[user] = tokens.create(f"{user}-laptop", user)
    yield env
    server.should_exit = True
    thread.join(timeout=30)
    executor.cleanup_all(remove_volumes=True)
    hub.close()


@asynccontextmanager
async def mcp_client(
    url: str,
    token: str | None,
    mode: str = "auto",
    headers: dict[str, str] | None = None,
    **kwargs: Any,
):
    """The official client (mcp 2.3) over streamable HTTP with a bearer token."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    headers = dict(headers or {}, **({"Authorization": f"Bearer {token}"} if token else {}))
    http = create_mcp_http_client(headers=headers)
    async with Client(streamable_http_client(url, http_client=http), mode=mode, **kwargs) as c:
        yield c


MODES = [
    pytest.param("legacy", id="2025-11-25"),
    pytest.param("auto", id="2026-07-28"),
]
