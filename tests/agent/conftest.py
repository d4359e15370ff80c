"""Fixtures for agent tests: a ChatService over real Docker with a chosen model, its tools
reached in-process ("direct") or through the app's own MCP endpoint ("mcp"): every agent test
runs in both modes."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
import uvicorn
from fastapi import FastAPI

from agent.events import ChatEvent
from agent.service import ChatService
from frontend.server import build_mcp_app
from mcp_server import TokenStore, mount_mcp
from settings import load_settings
from tests.support import free_port


async def serve_mcp(service: ChatService, settings) -> tuple[str, TokenStore, uvicorn.Server]:
    """The app's MCP endpoint for `service`, on this event loop, on a free port."""
    tokens = TokenStore(settings.data_dir / "mcp.db")
    app = FastAPI()
    mount_mcp(app, build_mcp_app(settings, service, tokens))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    server.task = task  # type: ignore[attr-defined]
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    return f"http://127.0.0.1:{port}/mcp/", tokens, server


@pytest.fixture(params=["direct", "mcp"])
async def make_service(request, executor, tmp_path):
    """Factory: ChatService(model) sharing the session-wide executor; data in tmp_path."""
    made: list[ChatService] = []
    servers: list[uvicorn.Server] = []

    async def make(model=None, data_dir=None) -> ChatService:
        settings = dataclasses.replace(load_settings({}), data_dir=data_dir or tmp_path / "data")
        service = ChatService(settings, executor=executor, model=model)
        if request.param == "mcp":
            url, tokens, server = await serve_mcp(service, settings)
            service.use_mcp_tools(url, tokens)
            servers.append(server)
        made.append(service)
        return service

    yield make
    for service in made:
        await service.close(executor=False)  # the session-wide executor stays open
    for server in servers:
        server.should_exit = True
        await server.task  # type: ignore[attr-defined]


async def collect(stream) -> list[ChatEvent]:
    return [event async for event in stream]
