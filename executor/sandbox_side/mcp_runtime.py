"""Code mode's way out of the sandbox: installed as `/tools/mcp/_runtime.py`, it carries one MCP
tool call from sandbox code to the host and back (the generated modules in /tools/mcp call
`call`). The host holds the MCP sessions and credentials, and decides every call.

A call connects to the resident runner's unix socket ($SANDBOX_BRIDGE), sends one
length-prefixed JSON message and reads one answer; the runner forwards it over its channel.
Each call has its own connection, so threads may call at the same time. Standard library only.
"""

import json
import os
import socket
import struct

_LENGTH = struct.Struct(">I")
_ARGUMENTS_MAX = 4 << 20  # protocol.CALL_ARGS_MAX: the host refuses bigger calls anyway
_NO_RUNNER = (
    "MCP tools are called through the sandbox's resident runner, and this process has none "
    "(EXECUTOR_USE_RUNNER=false, or the runner failed and commands run as plain execs): the "
    "call cannot reach the host"
)


class McpToolError(Exception):
    """A tool call failed: the server reported an error, the host refused the call (a server or
    tool this user may not use, too large, timed out), or it could not be made. `message` is
    the server's or the host's words; `server` and `tool` the MCP names."""

    def __init__(self, message, server="", tool=""):
        super().__init__(message)
        self.message, self.server, self.tool = message, server, tool


def _read(sock, size):
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(min(size - len(data), 1 << 20))
        if not chunk:
            raise ConnectionError("the runner closed the call before answering")
        data += chunk
    return bytes(data)


def call(server, tool, arguments):
    """Call MCP tool `tool` of server `server` (original MCP names) with `arguments` (a dict
    that JSON can encode); the tool's result, or McpToolError."""
    path = os.environ.get("SANDBOX_BRIDGE")
    if not path:
        raise McpToolError(_NO_RUNNER, server, tool)
    try:
        body = json.dumps({"server": server, "tool": tool, "arguments": arguments}).encode()
    except (TypeError, ValueError) as exc:
        raise McpToolError(f"the arguments cannot be sent as JSON: {exc}", server, tool) from None
    if len(body) > _ARGUMENTS_MAX:
        raise McpToolError(
            f"the call's arguments are {len(body):,} bytes of JSON, over the "
            f"{_ARGUMENTS_MAX:,}-byte limit: pass a path in /workspace instead of the data",
            server,
            tool,
        )
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(path)
            sock.sendall(_LENGTH.pack(len(body)) + body)
            (length,) = _LENGTH.unpack(_read(sock, _LENGTH.size))
            answer = json.loads(_read(sock, length))
    except (OSError, ValueError) as exc:
        raise McpToolError(f"the call could not be made ({exc})", server, tool) from None
    if answer.get("ok"):
        return answer.get("value")
    raise McpToolError(str(answer.get("error") or "the call failed"), server, tool)
