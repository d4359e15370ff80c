"""Workspace retention: when each workspace was last used, and which are old enough to delete.

Last use is kept in memory by each sandbox and copied here by the reaper (no file I/O on the
hot path), then saved to one small JSON file so it survives restarts. A workspace never seen
before (made by an older version) counts from the moment it is first seen, so an upgrade never
deletes anything at once. Nothing that is in use is ever chosen: the caller passes the live
volumes.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path

logger = logging.getLogger(__name__)

DAY_S = 86400.0


class LastUse:
    """volume name -> seconds since the epoch of its last use."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._times: dict[str, float] = {}
        self._dirty = False
        if path is not None and path.exists():
            try:
                raw = json.loads(path.read_text())
                self._times = {str(k): float(v) for k, v in raw.items()}
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                logger.warning("ignoring unreadable last-use file %s: %s", path, exc)

    def touch(self, volume: str, when: float) -> None:
        with self._lock:
            if when > self._times.get(volume, 0.0):
                self._times[volume] = when
                self._dirty = True

    def seen(self, volume: str, now: float) -> float:
        """Its last use; a volume seen for the first time counts from now."""
        with self._lock:
            if volume not in self._times:
                self._times[volume] = now
                self._dirty = True
            return self._times[volume]

    def forget(self, volume: str) -> None:
        with self._lock:
            if self._times.pop(volume, None) is not None:
                self._dirty = True

    def save(self) -> None:
        with self._lock:
            if not self._dirty or self.path is None:
                return
            data = json.dumps(self._times)
            self._dirty = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(data)
        os.replace(tmp, self.path)


def expired(
    volumes: Iterable[str],
    last_use: LastUse,
    *,
    now: float,
    retention_days: float,
    in_use: set[str],
) -> list[str]:
    """The volumes unused for longer than `retention_days` (0 = keep forever), never one in
    `in_use`."""
    if retention_days <= 0:
        return []
    limit = retention_days * DAY_S
    return [v for v in volumes if v not in in_use and now - last_use.seen(v, now) > limit]
