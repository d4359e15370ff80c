"""A fastmcp server over streamable HTTP that needs a bearer token: `http_server.py PORT TOKEN`."""

from __future__ import annotations

import os
import sys

from fastmcp import FastMCP
from fastmcp.server.auth.providers.jwt import StaticTokenVerifier

port, token = int(sys.argv[1]), sys.argv[2]
verifier = StaticTokenVerifier(tokens={token: {"client_id": "code-mode-test", "scopes": []}})
mcp = FastMCP("remote", auth=verifier, instructions="A remote server behind a bearer token.")


@mcp.tool
def whoami() -> dict:
    """Who the server believes is calling, and its pid."""
    from fastmcp.server.dependencies import get_access_token

    access = get_access_token()
    return {"client_id": access.client_id if access else None, "pid": os.getpid()}


@mcp.tool
def shout(text: str) -> str:
    """The text in capitals."""
    return text.upper()


@mcp.tool
def numbers(count: int = 3) -> list[int]:
    """The numbers from 0 below count (a wrapped, non-object structured result)."""
    return list(range(count))


if __name__ == "__main__":
    mcp.run(transport="http", host="127.0.0.1", port=port, show_banner=False)
