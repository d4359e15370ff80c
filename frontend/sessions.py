"""Login sessions as signed cookies: who, since when, last seen; plus the list of logged-out ones.

A cookie value is `base64url(json payload) "." base64url(HMAC-SHA256(secret, payload))`. The
payload is readable by whoever holds the cookie, so it carries no secrets: the user, a random
session id, issue and last-seen times, and a keyed hash of the user's password fingerprint (a
password change or a removed user ends every session of that user).

A session ends after `idle_timeout_s` without a request (each request that finds the session
older than `refresh_s` gets a fresh cookie) and at the latest `max_age_s` after login. Logout
records the session id in `RevokedSessions` until the session would have expired anyway.

The secret is kept in the data directory (mode 0600), so sessions survive restarts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ._files import write_private

logger = logging.getLogger(__name__)

_SECRET_BYTES = 32


def load_secret(path: Path) -> bytes:
    """The signing secret in `path`, created (mode 0600) on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        text = path.read_text().strip()
        if len(text) < 2 * _SECRET_BYTES:
            raise ValueError(f"{path} holds no usable session secret; delete it") from None
        if path.stat().st_mode & 0o077:
            logger.warning("%s is readable by other accounts; run chmod 600 on it", path)
        return bytes.fromhex(text)
    secret = secrets.token_bytes(_SECRET_BYTES)
    with os.fdopen(fd, "w") as f:
        f.write(secret.hex() + "\n")
    logger.info("created the session secret %s", path)
    return secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    user: str
    sid: str
    issued: float
    seen: float
    fp: str  # keyed hash of the user's password fingerprint


class SessionCodec:
    """Signs, reads and ages session cookies; `clock` is wall-clock seconds (injectable)."""

    def __init__(
        self,
        secret: bytes,
        *,
        idle_timeout_s: float,
        max_age_s: float,
        refresh_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self.idle_timeout_s = idle_timeout_s
        self.max_age_s = max_age_s
        self.refresh_s = min(60.0, idle_timeout_s / 4) if refresh_s is None else refresh_s
        self._clock = clock
        # Per secret, so two apps on one host (cookies ignore the port) do not overwrite each
        # other's sessions.
        self.cookie_name = "mce_session_" + hashlib.sha256(secret).hexdigest()[:8]

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode("ascii"), hashlib.sha256).digest())

    def fingerprint(self, material: str) -> str:
        mac = hmac.new(self._secret, b"fp\0" + material.encode(), hashlib.sha256)
        return mac.hexdigest()[:16]

    def issue(self, user: str, material: str) -> Session:
        now = self._clock()
        return Session(user, secrets.token_urlsafe(12), now, now, self.fingerprint(material))

    def encode(self, session: Session) -> str:
        data = {
            "u": session.user,
            "s": session.sid,
            "i": round(session.issued, 3),
            "t": round(session.seen, 3),
            "f": session.fp,
        }
        payload = _b64(json.dumps(data, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}"

    def decode(self, value: str) -> Session | None:
        """The session in a cookie value if its signature is ours (expiry not checked)."""
        payload, _, signature = value.partition(".")
        if not payload or not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            data = json.loads(_unb64(payload))
            return Session(
                str(data["u"]), str(data["s"]), float(data["i"]), float(data["t"]), str(data["f"])
            )
        except (ValueError, KeyError, TypeError):
            return None

    def expired(self, session: Session) -> bool:
        now = self._clock()
        return now - session.seen >= self.idle_timeout_s or now - session.issued >= self.max_age_s

    def matches(self, session: Session, material: str | None) -> bool:
        """Whether the user still exists with the password the session was opened with."""
        return material is not None and hmac.compare_digest(session.fp, self.fingerprint(material))

    def touched(self, session: Session) -> Session | None:
        """The session seen now, if its last-seen time is old enough to be worth a new cookie."""
        now = self._clock()
        return replace(session, seen=now) if now - session.seen >= self.refresh_s else None

    def cookie_max_age(self, session: Session) -> int:
        """Seconds the browser should keep the cookie: until the absolute expiry."""
        return max(0, int(session.issued + self.max_age_s - self._clock()))


class RevokedSessions:
    """Ids of logged-out sessions, kept (in a 0600 JSON file) until they would have expired."""

    def __init__(self, path: Path | None, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._until: dict[str, float] = {}
        if path is not None and path.exists():
            try:
                self._until = {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
            except (ValueError, AttributeError) as exc:
                logger.warning("ignoring unreadable %s: %s", path, exc)

    def add(self, sid: str, until: float) -> None:
        now = self._clock()
        self._until = {k: v for k, v in self._until.items() if v > now}
        self._until[sid] = until
        if self.path is not None:
            write_private(self.path, json.dumps(self._until))

    def __contains__(self, sid: str) -> bool:
        until = self._until.get(sid)
        return until is not None and until > self._clock()
