"""Errors of code mode (the host side of `tools.mcp`).

    CodeModeError                   base of everything raised here
    ├── McpConfigError              the servers file cannot be used (also a `settings.ConfigError`,
    │                               so the app refuses to start with it); names file, server, field
    ├── ServerUnavailableError      a server could not be started, listed or reached
    └── ToolCallError               one call failed (refused, timed out, server error)

Errors of single bridged calls are not raised across the bridge: they become
`CallOutcome(ok=False, error=...)`, the message sandbox code sees in `tools.mcp.McpToolError`.
"""

from __future__ import annotations

from settings import ConfigError


class CodeModeError(Exception):
    """Base of code mode's errors."""


class McpConfigError(CodeModeError, ConfigError):
    """The MCP servers file is malformed; the message names the file, the server and the field."""


class ServerUnavailableError(CodeModeError):
    """A server could not be started, listed or reached (the message says why, redacted)."""


class ToolCallError(CodeModeError):
    """One bridged call failed; the message is what sandbox code sees in `McpToolError`."""
