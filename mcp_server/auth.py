"""HTTP authentication of the MCP endpoint: a bearer token from the TokenStore names the user.

`StoreTokenVerifier` is a fastmcp `TokenVerifier`, so fastmcp's own machinery makes the
`AccessToken` available to tools (`get_access_token()`: `subject` and `client_id` are the user,
`claims["token_name"]` the token's name). fastmcp answers a request without credentials with an
empty 401; a gate in front of it answers every refused request itself with a JSON body that says
what to do, before anything reaches the MCP session manager, so nothing runs.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar

from fastmcp.server.auth import AccessToken, TokenVerifier
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from .tokens import TokenStore

logger = logging.getLogger(__name__)

# The gate verifies first; fastmcp's backend then asks again for the same token within the same
# request. Remembering the gate's answer for the request avoids a second database read.
_verified: ContextVar[tuple[str, AccessToken] | None] = ContextVar("mcp_verified", default=None)

MISSING = (
    "This MCP endpoint needs an 'Authorization: Bearer <token>' header. Create a token with "
    "`mcp-code-executor token create NAME` (it is printed once) and configure your MCP client "
    "to send it."
)
INVALID = (
    "The bearer token is unknown or was revoked. List tokens with `mcp-code-executor token "
    "list` and create a new one with `mcp-code-executor token create NAME`."
)


class StoreTokenVerifier(TokenVerifier):
    """Maps a bearer token from `store` to an AccessToken whose subject is the token's user."""

    def __init__(self, store: TokenStore) -> None:
        super().__init__()
        self.store = store

    async def verify_token(self, token: str) -> AccessToken | None:
        cached = _verified.get()
        if cached is not None and cached[0] == token:
            return cached[1]
        info = self.store.verify(token)
        if info is None:
            return None
        return AccessToken(
            token=token,
            client_id=info.user,
            subject=info.user,
            scopes=[],
            claims={"token_name": info.name},
        )

    def get_middleware(self) -> list:
        return [Middleware(BearerGate, verifier=self), *super().get_middleware()]


class BearerGate:
    """Refuses requests without a current bearer token: 401 with a JSON body."""

    def __init__(self, app: ASGIApp, verifier: StoreTokenVerifier) -> None:
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = ""
        for name, value in scope.get("headers", []):
            if name.lower() == b"authorization":
                header = value.decode("latin-1")
                break
        if header[:7].lower() != "bearer " or not header[7:].strip():
            await _refuse(send, "missing_token", MISSING, 'Bearer realm="mcp"')
            return
        token = header[7:].strip()
        access = await self.verifier.verify_token(token)
        if access is None:
            logger.info("refused an MCP request with an unknown or revoked token")
            await _refuse(
                send, "invalid_token", INVALID, 'Bearer realm="mcp", error="invalid_token"'
            )
            return
        marker = _verified.set((header[7:], access))
        try:
            await self.app(scope, receive, send)
        finally:
            _verified.reset(marker)


async def _refuse(send: Send, error: str, description: str, challenge: str) -> None:
    body = json.dumps({"error": error, "error_description": description}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", challenge.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
