"""Which container and workspace volume belong to a session that took a warm-pool container.

A session's container and volume are normally named after the session, so nothing needs
remembering. A pooled container is made before its session exists, with a volume of its own;
Docker cannot rename volumes or relabel containers, so the claim is written here (a small JSON
file, replaced atomically) and read back after a restart, or when the container was removed and
must be recreated on the same volume.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

logger = logging.getLogger(__name__)


class WorkspaceRegistry:
    """session key -> (container name, volume name), persisted in one JSON file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[str, str]] = {}
        if path is not None and path.exists():
            try:
                raw = json.loads(path.read_text())
                self._entries = {k: (v[0], v[1]) for k, v in raw.items()}
            except (OSError, ValueError, IndexError, TypeError) as exc:
                logger.warning("ignoring unreadable workspace registry %s: %s", path, exc)

    def get(self, key: str) -> tuple[str, str] | None:
        with self._lock:
            return self._entries.get(key)

    def names(self) -> set[str]:
        """Every container and volume name recorded."""
        with self._lock:
            return {name for pair in self._entries.values() for name in pair}

    def key_of_container(self, container_name: str) -> str | None:
        with self._lock:
            return next((k for k, (c, _) in self._entries.items() if c == container_name), None)

    def entry_of_volume(self, volume: str) -> tuple[str, str] | None:
        """(key, container name) of the session that took `volume`, if it was a pooled one."""
        with self._lock:
            return next(((k, c) for k, (c, v) in self._entries.items() if v == volume), None)

    def set(self, key: str, container: str, volume: str) -> None:
        with self._lock:
            self._entries[key] = (container, volume)
            self._save()

    def drop(self, key: str) -> None:
        with self._lock:
            if self._entries.pop(key, None) is not None:
                self._save()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({k: list(v) for k, v in self._entries.items()}))
        os.replace(tmp, self.path)
