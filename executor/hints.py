"""What a caller (a model, an MCP client) should do about each executor error: one table, used
by the agent's tools and the MCP server alike."""

from __future__ import annotations

from .errors import (
    FileTooLargeError,
    InvalidArgumentError,
    NotARegularFileError,
    PathNotAllowedError,
    QuotaExceededError,
    RateLimitedError,
    SandboxFileNotFoundError,
    SandboxUnavailableError,
)

HINT_SEPARATOR = "\nHint: "  # between an error's message and its hint, where they share a text

_HINTS: list[tuple[type[Exception], str]] = [
    (SandboxFileNotFoundError, "Check the path with list_files; relative paths are in /workspace."),
    (
        PathNotAllowedError,
        "Only /workspace can be written; /tools and /skills are read-only. Use paths inside "
        "/workspace and do not follow symlinks out of it.",
    ),
    (NotARegularFileError, "That is a directory or special file; use list_files on directories."),
    (FileTooLargeError, "Work on the file in parts, or reduce the data written."),
    (QuotaExceededError, "Delete files you no longer need from /workspace, then retry."),
    (InvalidArgumentError, "Fix the argument as the error says and call the tool again."),
    (
        RateLimitedError,
        "A usage limit was reached: wait as the error says before retrying, and tell the user "
        "why there is a pause.",
    ),
    (
        SandboxUnavailableError,
        "The sandbox service is down. Do not retry now; tell the user the code could not run.",
    ),
]


def hint_for(exc: Exception, extra: list[tuple[type[Exception], str]] | None = None) -> str:
    """The hint for `exc` (`extra` entries, e.g. the MCP server's own errors, checked first)."""
    for cls, hint in [*(extra or []), *_HINTS]:
        if isinstance(exc, cls):
            return hint
    return "Try again or another approach."
