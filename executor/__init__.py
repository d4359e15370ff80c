"""The sandbox executor: one hardened Docker container per chat session.

Public API: `DockerExecutionClient` and the error tree rooted at `ExecutorError`. No ADK, no
Gradio here; the agent and the UI sit on top.
"""

from .audit import audit_tags
from .client import DockerExecutionClient, FileInfo, OutputChunk
from .errors import (
    DockerUnavailableError,
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
)
from .keys import chat_key, split_key
from .sandbox import ExecutionResult
from .tools_index import ToolFunction

__all__ = [
    "DockerExecutionClient",
    "DockerUnavailableError",
    "ExecutionResult",
    "ExecutorError",
    "FileInfo",
    "FileTooLargeError",
    "ImageNotFoundError",
    "InvalidArgumentError",
    "NotARegularFileError",
    "OutputChunk",
    "PathNotAllowedError",
    "QuotaExceededError",
    "RateLimitedError",
    "SandboxCommandError",
    "SandboxFileNotFoundError",
    "SandboxPathError",
    "SandboxStartError",
    "ToolFunction",
    "audit_tags",
    "chat_key",
    "split_key",
]
