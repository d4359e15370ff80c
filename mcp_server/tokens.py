"""Bearer tokens for the MCP endpoint: one per client, owned by a user, stored only as hashes.

A token is 32 random bytes (URL-safe base64 with a `mce_` prefix). The store keeps its sha256,
never the token itself: the plaintext is shown once, when it is created. Looking a token up by
the hash of a 256-bit secret leaks nothing useful through timing, and the final comparison is
constant-time anyway. SQLite (WAL) lets the CLI create or revoke tokens while the app runs: every
verification reads the table, so a revoked token stops working on its next request.

The app's own agent, when it reaches its tools through MCP, uses *internal* tokens instead:
`internal_token(user)` signs the user's name with a secret that lives only in this process
(HMAC-SHA256), so nothing is stored and every such token dies with the process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "mce_"
INTERNAL_PREFIX = "mci_"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_LAST_USED_EVERY_S = 60.0  # last_used is written at most this often per token


class TokenError(ValueError):
    """A token name is malformed or already taken."""


@dataclass(frozen=True)
class TokenInfo:
    """What the store knows about a token (never the token itself)."""

    name: str
    user: str
    created: float  # seconds since the epoch
    last_used: float | None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def open_db(path: Path) -> sqlite3.Connection:
    """A private SQLite database (0600 in a 0700 folder) in WAL mode, shared across threads."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5.0)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA busy_timeout=5000")
    return db


class TokenStore:
    """Create, list, revoke and verify tokens in `<path>` (an SQLite file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_db(path)
        self._lock = threading.Lock()
        self._secret = secrets.token_bytes(32)  # for internal tokens; never leaves the process
        with self._lock:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS tokens (name TEXT PRIMARY KEY, user TEXT NOT NULL, "
                "digest TEXT NOT NULL UNIQUE, created REAL NOT NULL, last_used REAL)"
            )

    def create(self, name: str, user: str) -> str:
        """Make a token for `user`; returns the plaintext, which is not stored anywhere."""
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise TokenError(
                f"invalid token name {name!r}: 1-64 letters, digits or '_.@-', "
                "starting with a letter or digit"
            )
        if not isinstance(user, str) or not user:
            raise TokenError("a token needs a user")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        try:
            with self._lock:
                self._db.execute(
                    "INSERT INTO tokens (name, user, digest, created) VALUES (?, ?, ?, ?)",
                    (name, user, _digest(token), time.time()),
                )
        except sqlite3.IntegrityError:
            raise TokenError(
                f"a token named {name!r} exists already; revoke it or pick another name"
            ) from None
        logger.info("created MCP token %r for user %r", name, user)
        return token

    def list(self, user: str | None = None) -> list[TokenInfo]:
        """Every token (or `user`'s), oldest first."""
        query = "SELECT name, user, created, last_used FROM tokens"
        params: tuple = ()
        if user is not None:
            query += " WHERE user = ?"
            params = (user,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created", params).fetchall()
        return [TokenInfo(*row) for row in rows]

    def revoke(self, name: str) -> bool:
        """Delete the token called `name`; False if there was none."""
        with self._lock:
            gone = self._db.execute("DELETE FROM tokens WHERE name = ?", (name,)).rowcount
        if gone:
            logger.info("revoked MCP token %r", name)
        return bool(gone)

    def internal_token(self, user: str, name: str = "agent") -> str:
        """A token for `user` valid in this process only (for the app's own agent)."""
        payload = base64.urlsafe_b64encode(json.dumps([user, name]).encode()).decode()
        return f"{INTERNAL_PREFIX}{payload}.{self._sign(payload)}"

    def _sign(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()

    def _verify_internal(self, token: str) -> TokenInfo | None:
        payload, _, signature = token[len(INTERNAL_PREFIX) :].rpartition(".")
        if not payload or not hmac.compare_digest(signature, self._sign(payload)):
            return None
        user, name = json.loads(base64.urlsafe_b64decode(payload))
        return TokenInfo(name, user, 0.0, None)

    def verify(self, token: str) -> TokenInfo | None:
        """The token's info if it is current, else None."""
        if isinstance(token, str) and token.startswith(INTERNAL_PREFIX) and len(token) < 2000:
            return self._verify_internal(token)
        if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        digest = _digest(token)
        with self._lock:
            row = self._db.execute(
                "SELECT name, user, created, last_used, digest FROM tokens WHERE digest = ?",
                (digest,),
            ).fetchone()
        if row is None or not hmac.compare_digest(row[4], digest):
            return None
        name, user, created, last_used = row[:4]
        now = time.time()
        if last_used is None or now - last_used > _LAST_USED_EVERY_S:
            with self._lock:
                self._db.execute("UPDATE tokens SET last_used = ? WHERE name = ?", (now, name))
            last_used = now
        return TokenInfo(name, user, created, last_used)

    def has_token(self, user: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM tokens WHERE user = ? LIMIT 1", (user,))
            return row.fetchone() is not None

    def close(self) -> None:
        with self._lock:
            self._db.close()


def ensure_token(store: TokenStore, user: str, name: str = "local") -> str | None:
    """A first token for `user` when they have none (returned once, to print); else None."""
    if store.has_token(user):
        return None
    taken = {info.name for info in store.list()}
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    return store.create(candidate, user)
