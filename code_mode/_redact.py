"""Secret values of the servers file, kept out of every error text, log line and stub."""

from __future__ import annotations

import re
from collections.abc import Iterable


class Redactor:
    """Replaces every configured secret value in a text with `***`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub("***", text)
