"""Every error the executor raises, in one tree.

    ExecutorError
    ├── SandboxUnavailableError     the engine (Docker daemon, Kubernetes API) does not answer
    ├── ImageNotFoundError          the sandbox image is missing (run `make image`)
    ├── SandboxStartError           a session's container could not be created or started
    ├── EngineError                 an engine call failed in a way the executor did not expect
    │   ├── ContainerNotFoundError  the container, exec or volume is gone (removed from outside)
    │   └── ContainerConflictError  the name is taken, or the container is not running
    ├── InvalidArgumentError        also ValueError: bad timeout, NUL byte, bad module path ...
    ├── SandboxPathError            a path the caller may not use
    │   ├── PathNotAllowedError     also PermissionError: outside /workspace, read-only, via symlink
    │   ├── SandboxFileNotFoundError  also FileNotFoundError: names the path
    │   └── NotARegularFileError    a directory, FIFO or device where a file was expected
    ├── FileTooLargeError           over the per-file limit
    ├── QuotaExceededError          the workspace would exceed its quota
    ├── RateLimitedError            a per-user limit; says which and when to retry
    └── SandboxCommandError         an internal operation failed unexpectedly in the container

A command that exits non-zero, times out or is stopped is not an error: the result says so in
fields (`ExecutionResult.timed_out`, `.stopped`, `.oom_killed`, ...). Engine SDK exceptions
(docker, requests, urllib3, sockets, kubernetes) never leave the executor: each engine module
translates them at one place into these classes.
"""

from __future__ import annotations


class ExecutorError(Exception):
    """Base of every executor error."""


class SandboxUnavailableError(ExecutorError):
    """The engine does not answer (is Docker running?). Nothing was run."""


class ImageNotFoundError(ExecutorError):
    """The sandbox image does not exist."""


class SandboxStartError(ExecutorError):
    """A session's container could not be created or started."""


class EngineError(ExecutorError):
    """An engine call failed unexpectedly; the message carries the engine's explanation."""


class ContainerNotFoundError(EngineError):
    """The container, exec or volume no longer exists."""


class ContainerConflictError(EngineError):
    """The engine refused because of the object's state: a name in use, a stopped container."""


class InvalidArgumentError(ExecutorError, ValueError):
    """An argument is malformed (timeout out of range, NUL byte, bad module path ...)."""


class SandboxPathError(ExecutorError):
    """A path the caller may not use, or that does not name what was expected."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class PathNotAllowedError(SandboxPathError, PermissionError):
    """The path leaves /workspace, or would write to a read-only place."""


class SandboxFileNotFoundError(SandboxPathError, FileNotFoundError):
    """No file at the path; the message names it."""


class NotARegularFileError(SandboxPathError):
    """The path is a directory, FIFO or device where a regular file was expected."""


class FileTooLargeError(ExecutorError):
    """The file is over the per-file size limit."""


class QuotaExceededError(ExecutorError):
    """The write would take the workspace over its quota."""


class RateLimitedError(ExecutorError):
    """A per-user limit was reached; `limit` names it, `retry_after_s` says when to retry."""

    def __init__(self, message: str, *, limit: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after_s = retry_after_s


class SandboxCommandError(ExecutorError):
    """An internal operation failed inside the container in an unexpected way."""
