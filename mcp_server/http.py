"""The MCP endpoint as an ASGI app, to serve at `/mcp/` in the same process as the web UI.

One endpoint answers both protocol revisions: 2025-11-25 clients `initialize` and get an
`Mcp-Session-Id`; 2026-07-28 clients send self-contained requests without one (the SDK's
session manager tells them apart by the request). Host and Origin headers are checked before
anything else (DNS rebinding: a web page must not drive a local sandbox), then the bearer token.

A 2025-11-25 client that drops its connection is not a cancellation to the SDK (the protocol lets
such a client reconnect and resume, which needs an event store this server does not keep), so
the command would run on for nobody. `DisconnectWatch` notes the disconnect of each request in its
scope; the tools (server.client_gone) then stop the command. 2026-07-28 requests are cancelled by
the SDK itself when their connection closes.

Mounting (see `mount_mcp`): the MCP app's lifespan runs the session manager's task group. A
parent app that does not enter it fails every call with "Task group is not initialized".
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastmcp import FastMCP
from fastmcp.server.http import StarletteWithLifespan
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .live import DISCONNECT_KEY

logger = logging.getLogger(__name__)


class DisconnectWatch:
    """Puts an asyncio.Event in each HTTP request's scope, set when the client disconnects."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gone = scope[DISCONNECT_KEY] = asyncio.Event()

        async def watched() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
            return message

        await self.app(scope, watched, send)


def allowed_hosts_for(host: str, extra_hosts: Sequence[str] = ()) -> list[str]:
    """Host names a request may carry in its Host header (ports are not compared).

    Loopback names are always allowed (fastmcp adds them). For a server bound to all addresses
    (0.0.0.0 or ::) the address a request arrived on is allowed too; DNS names under which the
    app is reached must be listed in `extra_hosts`."""
    hosts = [h for h in (host, *extra_hosts) if h]
    try:
        if ipaddress.ip_address(host).is_unspecified:
            hosts.remove(host)
    except ValueError:
        pass
    return hosts


def build_http_app(
    mcp: FastMCP,
    *,
    host: str = "127.0.0.1",
    extra_hosts: Sequence[str] = (),
    allowed_origins: Sequence[str] = (),
    path: str = "/",
) -> StarletteWithLifespan:
    """The streamable-HTTP app of `mcp` (built with a token store, so every request needs a
    bearer token), with Host/Origin protection on. `path` is where the endpoint sits inside
    this app: "/" when the app is mounted at "/mcp" (the endpoint is then `/mcp/`)."""
    if mcp.auth is None:
        raise ValueError("an HTTP MCP server needs token auth: build it with a TokenStore")
    return mcp.http_app(
        path=path,
        transport="http",
        stateless_http=False,  # stateful allowed: 2025-11-25 clients keep their sessions
        json_response=False,  # SSE responses: progress notifications reach the client live
        host_origin_protection=True,
        allowed_hosts=allowed_hosts_for(host, extra_hosts),
        allowed_origins=list(allowed_origins),
        middleware=[Middleware(DisconnectWatch)],
    )


def mount_mcp(app: Any, mcp_app: StarletteWithLifespan, path: str = "/mcp") -> None:
    """Serve `mcp_app` under `path` of a FastAPI/Starlette `app`: `path + "/"` is the endpoint,
    `path` redirects there (307 keeps the method and body), and the MCP lifespan runs inside the
    app's own. Call it before mounting Gradio at "/" (Gradio wraps the lifespan it finds)."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(parent: Any) -> AsyncIterator[Any]:
        async with mcp_app.lifespan(mcp_app), inner(parent) as state:
            yield state

    app.router.lifespan_context = lifespan

    async def redirect(request: Request) -> RedirectResponse:
        target = path + "/" + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(target, status_code=307)

    app.router.add_route(path, redirect, methods=["GET", "POST", "DELETE"])
    app.mount(path, mcp_app)
