"""Live output of the chat's tool calls: tools publish a running command's output here, and
the chat turn of that session listens and passes it on to the UI as ToolOutput events.

One hub per ChatService, in-process, one listener per session key. (The MCP server's live
output is another thing: `mcp_server.live.ProgressNotifier` sends it to an MCP client as
progress notifications.)
"""

from __future__ import annotations

from collections.abc import Callable

Listener = Callable[[str, str, str], None]  # (call_id, stream, text)


class LiveOutputHub:
    """Routes output published under a session's key to that session's listener."""

    def __init__(self) -> None:
        self._listeners: dict[str, Listener] = {}

    def listen(self, key: str, listener: Listener) -> None:
        self._listeners[key] = listener

    def stop(self, key: str) -> None:
        self._listeners.pop(key, None)

    def publish(self, key: str, call_id: str, stream: str, text: str) -> None:
        listener = self._listeners.get(key)
        if listener is not None:
            listener(call_id, stream, text)
