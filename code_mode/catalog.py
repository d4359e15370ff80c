"""What each server offers (its tools/list), kept on disk so a restarted app builds the stubs
without starting a single server.

The file (`APP_DATA_DIR/mcp_catalog.json`) maps each server's config fingerprint to its last
listing: editing a server's entry in the servers file (command, args, URL, ...) makes it list
again. A listing is refreshed whenever the server (re)connects.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_FORMAT = 1


@dataclass(frozen=True)
class ToolSpec:
    """One tool as the server listed it (original names, raw schemas)."""

    name: str
    description: str = ""
    input_schema: dict[str, Any] = field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    title: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema,
            "output_schema": self.output_schema,
            "title": self.title,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ToolSpec:
        return cls(
            name=str(data["name"]),
            description=str(data.get("description") or ""),
            input_schema=dict(data.get("input_schema") or {}),
            output_schema=data.get("output_schema"),
            title=str(data.get("title") or ""),
        )


@dataclass(frozen=True)
class ServerListing:
    """A server's tools and instructions at one listing."""

    server: str
    fingerprint: str
    tools: tuple[ToolSpec, ...] = ()
    instructions: str = ""
    title: str = ""  # the server's own name/title, if it gave one
    listed_at: float = 0.0

    def tool(self, name: str) -> ToolSpec | None:
        return next((t for t in self.tools if t.name == name), None)

    def content_key(self) -> str:
        """Changes iff what the stubs show changes (not the time of listing)."""
        return json.dumps(
            [self.instructions, self.title, [t.to_json() for t in self.tools]],
            sort_keys=True,
            default=str,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "instructions": self.instructions,
            "title": self.title,
            "listed_at": self.listed_at,
            "tools": [t.to_json() for t in self.tools],
        }

    @classmethod
    def from_json(cls, fingerprint: str, data: dict[str, Any]) -> ServerListing:
        return cls(
            server=str(data["server"]),
            fingerprint=fingerprint,
            tools=tuple(ToolSpec.from_json(t) for t in data.get("tools") or []),
            instructions=str(data.get("instructions") or ""),
            title=str(data.get("title") or ""),
            listed_at=float(data.get("listed_at") or 0.0),
        )


class Catalog:
    """The listings, in memory and (when a path is given) on disk. Thread-safe."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, ServerListing] = {}
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            logger.warning("ignoring the MCP catalog %s: %s (servers list again)", path, exc)
            return
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            return
        for fingerprint, entry in (data.get("entries") or {}).items():
            try:
                self._entries[fingerprint] = ServerListing.from_json(fingerprint, entry)
            except (KeyError, TypeError, ValueError):
                logger.warning("ignoring a malformed entry of the MCP catalog %s", path)

    def get(self, fingerprint: str) -> ServerListing | None:
        with self._lock:
            return self._entries.get(fingerprint)

    def put(self, listing: ServerListing, keep: Iterable[str] = ()) -> bool:
        """Store a listing; returns whether what the stubs show changed. Entries whose
        fingerprint is neither this one nor in `keep` are dropped from the file."""
        with self._lock:
            before = self._entries.get(listing.fingerprint)
            changed = before is None or before.content_key() != listing.content_key()
            self._entries[listing.fingerprint] = listing
            wanted = {listing.fingerprint, *keep}
            if keep:
                self._entries = {k: v for k, v in self._entries.items() if k in wanted}
            if self.path is not None:
                self._save(self.path, {k: v.to_json() for k, v in self._entries.items()})
        return changed

    @staticmethod
    def _save(path: Path, entries: dict[str, Any]) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".mcp_catalog.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump({"format": _FORMAT, "saved_at": time.time(), "entries": entries}, out)
                os.replace(tmp, path)
            finally:
                Path(tmp).unlink(missing_ok=True)
        except OSError as exc:
            logger.warning("could not save the MCP catalog %s: %s", path, exc)
