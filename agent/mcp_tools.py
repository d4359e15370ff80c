"""The agent's tools reached through the app's own MCP endpoint (`APP_AGENT_TOOLS=mcp`).

The same tools as the in-process ones (both come from `tool_surface`), served by
mcp_server/ and called through ADK's McpToolset: each call carries a token that only this
process can sign (for the chat's user) and the chat's sandbox id, so a chat reaches its own
sandbox exactly as in direct mode, and live output arrives as MCP progress notifications.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from google.adk.agents.readonly_context import ReadonlyContext
from google.adk.tools.mcp_tool import McpToolset, StreamableHTTPConnectionParams

from executor import chat_key
from tool_surface import SANDBOX_HEADER, TOOL_NAMES

from .live import LiveOutputHub


class Signer(Protocol):
    def internal_token(self, user: str, name: str = "agent") -> str: ...


def mcp_toolset(
    url: str, signer: Signer, *, max_timeout_s: float, live: LiveOutputHub | None = None
) -> McpToolset:
    """ADK's McpToolset against `url`, bound per call to the calling chat."""
    # Without Google credentials ADK warns about mTLS on every connection; this endpoint is ours.
    os.environ.setdefault("GOOGLE_API_USE_CLIENT_CERTIFICATE", "false")

    def headers(context: ReadonlyContext) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {signer.internal_token(context.user_id)}",
            SANDBOX_HEADER: context.session.id,
        }

    def progress(
        tool_name: str, *, callback_context: Any = None, **_: Any
    ) -> Callable[[float, float | None, str | None], Awaitable[None]] | None:
        if live is None or callback_context is None:
            return None
        key = chat_key(callback_context.user_id, callback_context.session.id)
        call_id = getattr(callback_context, "function_call_id", "") or ""

        async def publish(_progress: float, _total: float | None, message: str | None) -> None:
            if message:
                live.publish(key, call_id, "stdout", message)

        return publish

    return McpToolset(
        connection_params=StreamableHTTPConnectionParams(
            url=url, timeout=10, sse_read_timeout=max_timeout_s + 60
        ),
        tool_filter=list(TOOL_NAMES),
        header_provider=headers,
        progress_callback=progress,
    )
