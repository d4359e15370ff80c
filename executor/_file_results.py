"""What a file operation's outcome means: its metadata, or the executor error it stands for.

The in-sandbox helper (`sandbox_side/files.py`) ends every operation with one JSON line on stderr:
metadata on success, or `{"kind", "message", "path"}` on refusal. Pure: no I/O here.
"""

from __future__ import annotations

import json
from typing import Any

from ._exec import StreamEnd
from ._wording import Outcome
from .errors import (
    ExecutorError,
    FileTooLargeError,
    InvalidArgumentError,
    NotARegularFileError,
    PathNotAllowedError,
    QuotaExceededError,
    SandboxCommandError,
    SandboxFileNotFoundError,
)

_SIGXFSZ_EXIT = 153  # the fsize ulimit killed the writer
_PATH_ERRORS = {
    "not_found": SandboxFileNotFoundError,
    "not_allowed": PathNotAllowedError,
    "not_file": NotARegularFileError,
}


def file_meta(stderr: bytes) -> dict[str, Any]:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    try:
        meta = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        return {}
    return meta if isinstance(meta, dict) else {}


def file_error(
    op: str, path: str, outcome: Outcome, *, timeout_s: float, max_file_bytes: int
) -> ExecutorError | None:
    """The error a failed file operation stands for; None when it succeeded."""
    if outcome.exit_code == 0 and outcome.ended is StreamEnd.EOF:
        return None
    meta = file_meta(outcome.stderr)
    kind = meta.get("kind")
    message = str(meta.get("message") or outcome.stderr.decode("utf-8", "replace")[-500:])
    if outcome.ended is StreamEnd.DEADLINE:
        return SandboxCommandError(f"{op} of {path} did not finish within {timeout_s:g} s")
    if outcome.exit_code == _SIGXFSZ_EXIT:
        return FileTooLargeError(
            f"{path} would be larger than the per-file limit of {max_file_bytes:,} bytes"
        )
    if kind in _PATH_ERRORS:
        return _PATH_ERRORS[kind](message, path)
    if kind == "invalid":
        return InvalidArgumentError(message)
    if kind == "quota":
        return QuotaExceededError(message)
    if kind == "too_large":
        return FileTooLargeError(message)
    if kind == "no_space":
        return QuotaExceededError(f"no space left for {path}: {message}")
    return SandboxCommandError(f"{op} of {path} failed (exit {outcome.exit_code}): {message}")
