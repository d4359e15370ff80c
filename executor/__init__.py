"""The sandbox executor: one hardened container per chat session.

Public API: `DockerExecutionClient`, the result types it returns, and the error tree rooted at
`ExecutorError`. No ADK, no Gradio here; the agent, the UI and the MCP server sit on top. Layers:
engine (engines/) -> sandbox (sandbox.py) -> manager (manager.py) -> client (client.py).
"""

from .audit import audit_tags
from .client import DockerExecutionClient
from .errors import (
    ContainerConflictError,
    ContainerNotFoundError,
    EngineError,
    ExecutorError,
    FileTooLargeError,
    ImageNotFoundError,
    InvalidArgumentError,
    NotARegularFileError,
    PathNotAllowedError,
    QuotaExceededError,
    RateLimitedError,
    SandboxCommandError,
    SandboxFileNotFoundError,
    SandboxPathError,
    SandboxStartError,
    SandboxUnavailableError,
)
from .keys import SANDBOX_HEADER, chat_key, split_key
from .results import (
    ExecutionResult,
    FileInfo,
    FileRead,
    Inventory,
    OutputChunk,
    PoolStatus,
    SandboxInfo,
)
from .tools_index import ToolFunction

__all__ = [
    "SANDBOX_HEADER",
    "ContainerConflictError",
    "ContainerNotFoundError",
    "DockerExecutionClient",
    "EngineError",
    "ExecutionResult",
    "ExecutorError",
    "FileInfo",
    "FileRead",
    "FileTooLargeError",
    "ImageNotFoundError",
    "InvalidArgumentError",
    "Inventory",
    "NotARegularFileError",
    "OutputChunk",
    "PathNotAllowedError",
    "PoolStatus",
    "QuotaExceededError",
    "RateLimitedError",
    "SandboxCommandError",
    "SandboxFileNotFoundError",
    "SandboxInfo",
    "SandboxPathError",
    "SandboxStartError",
    "SandboxUnavailableError",
    "ToolFunction",
    "audit_tags",
    "chat_key",
    "split_key",
]
