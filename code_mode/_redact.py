"""Secret values of the servers file, kept out of every error text, log line and stub."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

# Loggers of the libraries that talk to the servers; httpx2 logs every request's URL at INFO,
# and a URL may carry a key (`?api_key=${KEY}`).
LIBRARY_LOGGERS = (
    "httpx2",
    "client",  # mcp.client.session's own logger name
    "mcp.client.client",
    "mcp.client.session",
    "mcp.client.stdio",
    "mcp.client.streamable_http",
    "mcp.shared.jsonrpc_dispatcher",
)


class Redactor:
    """Replaces every configured secret value in a text with `***`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub("***", text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's message (installed on LIBRARY_LOGGERS)."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True

    def install(self) -> None:
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).addFilter(self)

    def remove(self) -> None:
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).removeFilter(self)
