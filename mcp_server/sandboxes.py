"""Sandbox handles: the ids an MCP client passes back to reach the same sandbox again.

The 2026-07-28 protocol has no sessions, so state that spans calls travels as an explicit id the
server mints (a "handle"). A user's handles are:

- `default`: the user's default MCP sandbox, used when a call names none;
- `sb-<random>`: sandboxes made with `create_sandbox`, recorded (owner, title, created, last
  used) in SQLite so they survive a restart;
- the ids of the user's chats in the web UI: a chat's sandbox is reachable through MCP, so an
  IDE agent can work in the same workspace as the chat. The app lists the chats through the
  `ChatDirectory` protocol (this package never imports the UI or the agent); a chat's executor
  key is `executor.chat_key(user, chat_id)`, the one route to it everywhere.

Every handle resolves to an executor key built with the *caller's* user, so even a correct guess
of someone else's id cannot reach their sandbox; an unknown id and another user's id get the same
`NoSuchSandbox` error, so the answer reveals nothing.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from executor import DockerExecutionClient, chat_key

from .tokens import open_db

logger = logging.getLogger(__name__)

DEFAULT_ID = "default"
MCP_PREFIX = "sb-"
MAX_SANDBOXES_PER_USER = 100
_LAST_USED_EVERY_S = 30.0


class NoSuchSandbox(LookupError):
    """The id names no sandbox of this user (whether unknown or someone else's)."""

    def __init__(self, sandbox_id: str) -> None:
        super().__init__(
            f"no such sandbox: {sandbox_id!r}. Call list_sandboxes for your sandboxes, "
            "create_sandbox for a new one, or leave sandbox_id out for your default sandbox."
        )
        self.sandbox_id = sandbox_id


class TooManySandboxes(RuntimeError):
    """The user has MAX_SANDBOXES_PER_USER handles already."""


@dataclass(frozen=True)
class ChatInfo:
    """A chat of the web UI, as the app reports it."""

    chat_id: str
    title: str
    updated: float  # seconds since the epoch


class ChatDirectory(Protocol):
    """What the app tells the MCP server about its chats (implemented over ChatService)."""

    async def list_chats(self, user: str) -> Sequence[ChatInfo]: ...


class ServiceChats:
    """A ChatDirectory over anything shaped like `agent.service.ChatService`
    (`list_sessions(user) -> [SessionInfo(session_id, title, updated)]`), without importing it."""

    def __init__(self, service: object) -> None:
        self._service = service

    async def list_chats(self, user: str) -> list[ChatInfo]:
        sessions = await self._service.list_sessions(user)  # type: ignore[attr-defined]
        return [ChatInfo(s.session_id, s.title, s.updated) for s in sessions]


@dataclass(frozen=True)
class SandboxHandle:
    """A resolved handle: which sandbox, and the executor key that reaches it. (Not to be
    confused with `executor.sandbox.Sandbox`, the container a key runs in.)"""

    sandbox_id: str
    kind: str  # "mcp" or "chat"
    key: str
    title: str
    created: float | None
    last_used: float | None


def mcp_key(user: str, sandbox_id: str) -> str:
    """The executor key of a user's MCP sandbox (chats use their own keys)."""
    return chat_key(user, f"mcp:{sandbox_id}")


class SandboxStore:
    """The MCP sandbox records in an SQLite file (owner, title, created, last used)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_db(path)
        self._lock = threading.Lock()
        self._written: dict[tuple[str, str], float] = {}
        with self._lock:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS sandboxes (id TEXT NOT NULL, owner TEXT NOT NULL, "
                "title TEXT NOT NULL, created REAL NOT NULL, last_used REAL, "
                "PRIMARY KEY (owner, id))"
            )

    def create(self, owner: str, title: str, sandbox_id: str | None = None) -> SandboxHandle:
        sandbox_id = sandbox_id or MCP_PREFIX + secrets.token_hex(8)
        now = time.time()
        with self._lock:
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM sandboxes WHERE owner = ? AND id != ?", (owner, DEFAULT_ID)
            ).fetchone()
            if count >= MAX_SANDBOXES_PER_USER and sandbox_id != DEFAULT_ID:
                raise TooManySandboxes(
                    f"you have {count} sandboxes, the most allowed; close some with "
                    "close_sandbox(sandbox_id, delete_workspace=true)"
                )
            self._db.execute(
                "INSERT OR IGNORE INTO sandboxes (id, owner, title, created) VALUES (?, ?, ?, ?)",
                (sandbox_id, owner, title, now),
            )
        found = self.get(owner, sandbox_id)
        assert found is not None
        return found

    def get(self, owner: str, sandbox_id: str) -> SandboxHandle | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, title, created, last_used FROM sandboxes WHERE owner = ? AND id = ?",
                (owner, sandbox_id),
            ).fetchone()
        if row is None:
            return None
        return SandboxHandle(row[0], "mcp", mcp_key(owner, row[0]), row[1], row[2], row[3])

    def list(self, owner: str) -> list[SandboxHandle]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, title, created, last_used FROM sandboxes WHERE owner = ? "
                "ORDER BY created",
                (owner,),
            ).fetchall()
        return [SandboxHandle(r[0], "mcp", mcp_key(owner, r[0]), r[1], r[2], r[3]) for r in rows]

    def touch(self, owner: str, sandbox_id: str) -> None:
        """Record a use (written at most every _LAST_USED_EVERY_S per sandbox)."""
        now = time.time()
        if now - self._written.get((owner, sandbox_id), 0.0) < _LAST_USED_EVERY_S:
            return
        self._written[(owner, sandbox_id)] = now
        with self._lock:
            self._db.execute(
                "UPDATE sandboxes SET last_used = ? WHERE owner = ? AND id = ?",
                (now, owner, sandbox_id),
            )

    def delete(self, owner: str, sandbox_id: str) -> bool:
        self._written.pop((owner, sandbox_id), None)
        with self._lock:
            gone = self._db.execute(
                "DELETE FROM sandboxes WHERE owner = ? AND id = ?", (owner, sandbox_id)
            ).rowcount
        return bool(gone)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Sandboxes:
    """Resolves, creates, lists and closes a user's sandbox handles."""

    def __init__(
        self,
        store: SandboxStore,
        executor: DockerExecutionClient,
        chats: ChatDirectory | None = None,
    ) -> None:
        self.store = store
        self.executor = executor
        self.chats = chats
        self._known_chats: set[tuple[str, str]] = set()

    async def resolve(self, user: str, sandbox_id: str | None) -> SandboxHandle:
        """The user's sandbox with this id (None or "" = the default); NoSuchSandbox otherwise."""
        if not sandbox_id or sandbox_id == DEFAULT_ID:
            found = self.store.get(user, DEFAULT_ID) or self.store.create(
                user, "Default MCP sandbox", DEFAULT_ID
            )
        elif sandbox_id.startswith(MCP_PREFIX):
            found = self.store.get(user, sandbox_id)
        else:
            found = await self._chat(user, sandbox_id)
        if found is None:
            raise NoSuchSandbox(sandbox_id or DEFAULT_ID)
        if found.kind == "mcp":
            self.store.touch(user, found.sandbox_id)
        return found

    async def _chat(self, user: str, chat_id: str) -> SandboxHandle | None:
        if self.chats is None or len(chat_id) > 200:
            return None
        if (user, chat_id) not in self._known_chats:
            # Listing is per user: another user's chat id is simply not in this list.
            for chat in await self.chats.list_chats(user):
                self._known_chats.add((user, chat.chat_id))
            if (user, chat_id) not in self._known_chats:
                return None
        return SandboxHandle(chat_id, "chat", chat_key(user, chat_id), "", None, None)

    async def create(self, user: str, title: str | None) -> SandboxHandle:
        return self.store.create(user, (title or "").strip()[:200] or "MCP sandbox")

    async def list(self, user: str) -> list[dict]:
        """The user's MCP sandboxes and chats: id, kind, title, created, last used, running."""
        live = self.executor.live_keys(user)
        listed = []
        mcp = {s.sandbox_id: s for s in self.store.list(user)}
        if DEFAULT_ID not in mcp:
            mcp[DEFAULT_ID] = SandboxHandle(
                DEFAULT_ID, "mcp", mcp_key(user, DEFAULT_ID), "Default MCP sandbox", None, None
            )
        for s in mcp.values():
            listed.append(_entry(s.sandbox_id, "mcp", s.title, s.created, s.last_used, s.key, live))
        if self.chats is not None:
            for chat in await self.chats.list_chats(user):
                self._known_chats.add((user, chat.chat_id))
                key = chat_key(user, chat.chat_id)
                entry = _entry(chat.chat_id, "chat", chat.title, None, chat.updated, key, live)
                listed.append(entry)
        return listed

    async def close(
        self, user: str, sandbox_id: str | None, delete_workspace: bool
    ) -> SandboxHandle:
        """Remove the sandbox's container (its workspace too when asked; then an MCP handle is
        forgotten). Without delete_workspace the handle stays and its next use starts afresh.
        Deleting goes through the executor's one deletion verb, as the web UI's delete does."""
        found = await self.resolve(user, sandbox_id)
        if delete_workspace:
            await self.executor.delete_session(found.key)
        else:
            await self.executor.remove_container(found.key)
        if delete_workspace and found.kind == "mcp":
            self.store.delete(user, found.sandbox_id)
        return found


def _entry(
    sandbox_id: str,
    kind: str,
    title: str,
    created: float | None,
    last_used: float | None,
    key: str,
    live: set[str],
) -> dict:
    return {
        "sandbox_id": sandbox_id,
        "kind": kind,
        "title": title,
        "created": _iso(created),
        "last_used": _iso(last_used),
        "running": key in live,
    }


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
