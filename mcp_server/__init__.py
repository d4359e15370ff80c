"""MCP server over the executor: the agent's sandbox tools for any MCP client.

Never name this package `mcp`: it would shadow the MCP library. A thin layer: the executor does
all Docker work; this package adds tokens (tokens.py, auth.py), sandbox handles (sandboxes.py),
the tools (server.py), the HTTP app (http.py) and stdio (cli.py).

    tokens = TokenStore(data_dir / "mcp.db")
    sandboxes = Sandboxes(SandboxStore(data_dir / "mcp.db"), executor, ServiceChats(service))
    mcp_app = build_http_app(build_mcp(executor, tokens, sandboxes), host=host)
    mount_mcp(fastapi_app, mcp_app)            # /mcp/ (and /mcp -> 307), lifespan composed
"""

from .auth import StoreTokenVerifier
from .banner import client_configs, first_run_banner
from .cli import DB_NAME, LOCAL_USER, main, token_main
from .http import build_http_app, mount_mcp
from .sandboxes import (
    DEFAULT_ID,
    ChatDirectory,
    ChatInfo,
    NoSuchSandbox,
    Sandboxes,
    SandboxHandle,
    SandboxStore,
    ServiceChats,
)
from .server import build_mcp
from .tokens import TokenError, TokenInfo, TokenStore, ensure_token

__all__ = [
    "DB_NAME",
    "DEFAULT_ID",
    "LOCAL_USER",
    "ChatDirectory",
    "ChatInfo",
    "NoSuchSandbox",
    "SandboxHandle",
    "SandboxStore",
    "Sandboxes",
    "ServiceChats",
    "StoreTokenVerifier",
    "TokenError",
    "TokenInfo",
    "TokenStore",
    "build_http_app",
    "build_mcp",
    "client_configs",
    "ensure_token",
    "first_run_banner",
    "main",
    "mount_mcp",
    "token_main",
]
