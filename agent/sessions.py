"""Where chats are stored: ADK sessions in SQLite (default) or any database ADK's
DatabaseSessionService reaches (`APP_SESSION_DB_URL`, e.g. Postgres for app replicas).

Why SQLite needs help under a crowd: ADK's SqliteSessionService opens a new connection (and
thread) for every operation, in SQLite's default rollback-journal mode. Fifty chats created at
once then take shared locks, try to upgrade them to write, and SQLite answers some of them
"database is locked" at once (a lock upgrade never waits: it would deadlock). Here one
connection is kept open in WAL mode with a busy timeout, and the operations of this process
take turns on it: each is a few milliseconds, so a crowd queues instead of failing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite
from google.adk.sessions import BaseSessionService
from google.adk.sessions.sqlite_session_service import (
    CREATE_SCHEMA_SQL,
    PRAGMA_FOREIGN_KEYS,
    SqliteSessionService,
)

from settings import Settings

logger = logging.getLogger(__name__)


class CrowdSafeSqliteSessionService(SqliteSessionService):
    """ADK's SQLite sessions, on one WAL connection that this process's operations share."""

    def __init__(self, db_path: str | Path) -> None:
        super().__init__(str(db_path))
        self._connection: aiosqlite.Connection | None = None
        self._turn = asyncio.Lock()

    @asynccontextmanager
    async def _get_db_connection(self) -> AsyncIterator[aiosqlite.Connection]:  # type: ignore[override]
        async with self._turn:
            if self._connection is None:
                self._connection = await self._open()
            try:
                yield self._connection
            except BaseException:
                await self._connection.rollback()
                raise

    async def _open(self) -> aiosqlite.Connection:
        connection = aiosqlite.connect(self._db_connect_path, uri=self._db_connect_uri)
        getattr(connection, "_thread", connection).daemon = True
        await connection
        try:
            connection.row_factory = aiosqlite.Row
            await connection.execute("PRAGMA journal_mode=WAL")  # readers never block writers
            await connection.execute("PRAGMA busy_timeout=30000")  # other processes: wait
            await connection.execute("PRAGMA synchronous=NORMAL")
            await connection.execute(PRAGMA_FOREIGN_KEYS)
            await connection.executescript(CREATE_SCHEMA_SQL)
            await connection.commit()
        except BaseException:
            await connection.close()
            raise
        return connection

    async def close(self) -> None:
        async with self._turn:
            if self._connection is not None:
                await self._connection.close()
                self._connection = None
        await super().close()


def make_session_service(settings: Settings) -> BaseSessionService:
    """The session store the settings name: `APP_SESSION_DB_URL`, else SQLite in the data dir."""
    url = settings.session_db_url
    if url:
        from google.adk.sessions import DatabaseSessionService

        logger.info("sessions: %s", url.split("@")[-1])  # never the password
        return DatabaseSessionService(db_url=url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return CrowdSafeSqliteSessionService(settings.data_dir / "sessions.db")
