"""Audit log: one JSON line per execution, file write, upload and download, rotated by size.

Fields: time, user, session, operation, target (command or path), exit_code, duration_s,
bytes_in, bytes_out, error, plus any tags the caller set with `audit_tags` (the MCP server sets
`via: mcp` and the token name around its executor calls). Values of the host's secret-looking
environment variables (names with KEY, TOKEN, SECRET, PASSWORD, ...) are replaced by `[REDACTED]`
wherever they appear.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from .keys import split_key

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION", re.IGNORECASE)
_MAX_TARGET_CHARS = 4096
_RESERVED = {
    "time",
    "user",
    "session",
    "operation",
    "target",
    "exit_code",
    "duration_s",
    "bytes_in",
    "bytes_out",
    "error",
}

# Extra fields for the records of the current task (a contextvar: asyncio tasks started inside
# `audit_tags`, such as the executor's own, inherit them).
_tags: ContextVar[dict[str, str]] = ContextVar("audit_tags", default={})  # noqa: B039


def current_tags() -> dict[str, str]:
    """The audit tags of the current task (to hand to work done elsewhere)."""
    return dict(_tags.get())


@contextmanager
def audit_tags(**tags: str | None) -> Iterator[None]:
    """Add `tags` to every audit record made inside this block (None values are left out)."""
    merged = {**_tags.get(), **{k: v for k, v in tags.items() if v is not None}}
    token = _tags.set(merged)
    try:
        yield
    finally:
        _tags.reset(token)


def host_secrets(environ: dict[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names look secret (longest first)."""
    environ = dict(os.environ) if environ is None else environ
    found = {v for k, v in environ.items() if _SECRET_NAME.search(k) and len(v) >= 6}
    return sorted(found, key=len, reverse=True)


def _now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


class AuditLog:
    """Appends audit records to a size-rotated JSON-lines file (None path: records nothing)."""

    def __init__(
        self, path: Path | None, *, max_bytes: int, backups: int, secrets: list[str] | None = None
    ) -> None:
        self.path = path
        self._secrets = host_secrets() if secrets is None else secrets
        self._max_bytes = max_bytes
        self._backups = backups
        self._logger: logging.Logger | None = None
        self._lock = threading.Lock()

    def _open(self) -> logging.Logger | None:
        """The file is opened on the first record, not at construction."""
        if self.path is None or self._logger is not None:
            return self._logger
        with self._lock:
            if self._logger is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                handler = logging.handlers.RotatingFileHandler(
                    self.path,
                    maxBytes=self._max_bytes,
                    backupCount=self._backups,
                    encoding="utf-8",
                )
                handler.setFormatter(logging.Formatter("%(message)s"))
                logger = logging.getLogger(f"mcp_code_executor.audit.{id(self)}")
                logger.propagate = False
                logger.setLevel(logging.INFO)
                logger.addHandler(handler)
                self._logger = logger
        return self._logger

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[REDACTED]")
        return text

    def record(
        self,
        key: str,
        operation: str,
        target: str,
        *,
        duration_s: float,
        exit_code: int | None = None,
        bytes_in: int = 0,
        bytes_out: int = 0,
        error: str | None = None,
        extra: dict[str, object] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        """One line. `extra`: more fields of this record (not overriding the standard ones);
        `tags`: the caller's audit tags when the record is made outside its task (the bridge
        loop), else the current task's."""
        logger = self._open()
        if logger is None:
            return
        user, session = split_key(key)
        entry = {
            "time": _now(),
            "user": self.redact(user),
            "session": self.redact(session),
            "operation": operation,
            "target": self.redact(target[:_MAX_TARGET_CHARS]),
            "exit_code": exit_code,
            "duration_s": round(duration_s, 4),
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
        }
        if error:
            entry["error"] = self.redact(error[:1000])
        for name, value in (extra or {}).items():
            if name not in _RESERVED:
                entry[name] = self.redact(value) if isinstance(value, str) else value
        for name, value in (_tags.get() if tags is None else tags).items():
            if name not in _RESERVED:
                entry[name] = self.redact(str(value)[:200])
        logger.info(json.dumps(entry, ensure_ascii=False))

    def close(self) -> None:
        if self._logger is not None:
            for handler in list(self._logger.handlers):
                handler.close()
                self._logger.removeHandler(handler)
