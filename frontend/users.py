"""Who may log in: users with argon2 password hashes in a TOML file, plus legacy APP_AUTH pairs.

The file (`APP_USERS_FILE`, default `data/users.toml`) is managed by the CLI
(`mcp-code-executor user add|passwd|remove|list`) and may change while the app runs: every
lookup checks its modification stamp and rereads it, so a removed user or a new password takes
effect at the next request. It is written atomically (temporary file + rename) with mode 0600,
under an advisory lock shared by the app (which rehashes on login when the argon2 parameters
change) and the CLI.

    [users."alice"]
    hash = "$argon2id$v=19$m=65536,t=3,p=4$..."
    created = "2026-05-01T10:00:00Z"

Timing: `check()` costs one argon2 verification whether the user exists or not (unknown names
verify against a dummy hash), so response times do not tell which names exist.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import secrets
import threading
import time
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from settings import ConfigError, Settings, auth_pairs

from ._files import write_private

logger = logging.getLogger(__name__)

MIN_PASSWORD_CHARS = 8
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_HEADER = (
    "# Users of mcp-code-executor (argon2 password hashes).\n"
    "# Manage with `mcp-code-executor user add|passwd|remove|list` (picked up live).\n"
)


class UserError(ValueError):
    """A user operation cannot be done (bad name, unknown or existing user, weak password)."""


def validate_name(name: str) -> str:
    """Return `name` if it can be a user id, else raise UserError saying what is allowed."""
    if not _NAME_RE.fullmatch(name):
        raise UserError(
            f"bad user name {name!r}: use 1 to 64 letters, digits, '.', '_', '-' or '@', "
            "starting with a letter or digit"
        )
    return name


def _validate_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise UserError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")


@dataclass(frozen=True)
class _User:
    hash: str
    created: str


class UserStore:
    """Users and their password hashes in one TOML file (missing file = no users)."""

    def __init__(self, path: Path, hasher: PasswordHasher | None = None) -> None:
        self.path = Path(path)
        self.hasher = hasher or PasswordHasher()
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._users: dict[str, _User] = {}
        self._dummy: str | None = None

    # -- reading --------------------------------------------------------------------------

    def _current(self) -> dict[str, _User]:
        """The users as on disk now; rereads the file when its stamp changed."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            with self._lock:
                self._stamp, self._users = None, {}
            return {}
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if stamp != self._stamp:
                self._users = self._parse()
                self._stamp = stamp
                if st.st_mode & 0o077:
                    logger.warning(
                        "%s is readable by other accounts (mode %o); run chmod 600 on it",
                        self.path,
                        st.st_mode & 0o777,
                    )
            return self._users

    def _parse(self) -> dict[str, _User]:
        try:
            with self.path.open("rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"APP_USERS_FILE {self.path}: {exc}") from exc
        users: dict[str, _User] = {}
        for name, entry in data.get("users", {}).items():
            if not (_NAME_RE.fullmatch(name) and isinstance(entry, dict)):
                raise ConfigError(f"APP_USERS_FILE {self.path}: bad user entry {name!r}")
            hash_ = entry.get("hash")
            if not isinstance(hash_, str) or not hash_.startswith("$argon2"):
                raise ConfigError(f"APP_USERS_FILE {self.path}: user {name!r} has no argon2 hash")
            users[name] = _User(hash_, str(entry.get("created", "")))
        return users

    def names(self) -> list[str]:
        return sorted(self._current())

    def fingerprint(self, name: str) -> str | None:
        """Opaque text that changes when the user's password changes; None if no such user."""
        user = self._current().get(name)
        return None if user is None else user.hash

    def verify(self, name: str, password: str) -> bool:
        """True if `name` exists and `password` is its password. Costs one argon2 verification
        either way; rehashes (and saves) when the hasher's parameters changed."""
        user = self._current().get(name)
        stored = user.hash if user is not None else self._dummy_hash()
        try:
            self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
        if user is None:
            return False
        if self.hasher.check_needs_rehash(stored):
            self._rehash(name, stored, password)
        return True

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self.hasher.hash(secrets.token_urlsafe(16))
        return self._dummy

    def _rehash(self, name: str, old: str, password: str) -> None:
        try:
            with self._editing() as users:
                if name in users and users[name].hash == old:
                    users[name] = _User(self.hasher.hash(password), users[name].created)
                    logger.info("rehashed the password of %s with the current parameters", name)
        except OSError as exc:
            logger.warning("could not save a rehashed password to %s: %s", self.path, exc)

    # -- writing --------------------------------------------------------------------------

    def add(self, name: str, password: str) -> None:
        validate_name(name)
        _validate_password(password)
        hash_ = self.hasher.hash(password)
        with self._editing() as users:
            if name in users:
                raise UserError(f"user {name} exists; use `user passwd {name}` to change it")
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            users[name] = _User(hash_, created)

    def set_password(self, name: str, password: str) -> None:
        _validate_password(password)
        hash_ = self.hasher.hash(password)
        with self._editing() as users:
            if name not in users:
                raise UserError(f"no user {name!r} in {self.path}")
            users[name] = _User(hash_, users[name].created)

    def remove(self, name: str) -> None:
        with self._editing() as users:
            if users.pop(name, None) is None:
                raise UserError(f"no user {name!r} in {self.path}")

    @contextmanager
    def _editing(self) -> Iterator[dict[str, _User]]:
        """Read-modify-write under an advisory lock shared with other processes."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            users = dict(self._parse())
            yield users
            self._write(users)
        finally:
            os.close(fd)  # releases the lock

    def _write(self, users: dict[str, _User]) -> None:
        lines = [_HEADER]
        for name in sorted(users):
            user = users[name]
            lines.append(
                f"\n[users.{json.dumps(name)}]\n"
                f"hash = {json.dumps(user.hash)}\n"
                f"created = {json.dumps(user.created)}\n"
            )
        write_private(self.path, "".join(lines))


class Authenticator:
    """Answers "is this the password of this user?" across the users file and APP_AUTH.

    A name in the file shadows the same name in APP_AUTH. APP_AUTH passwords are hashed in
    memory at start so that every check costs the same.
    """

    def __init__(self, store: UserStore, plain: Sequence[tuple[str, str]] = ()) -> None:
        self.store = store
        self._plain: dict[str, tuple[str, str]] = {}
        if plain:
            logger.warning(
                "plain-text passwords in APP_AUTH; use `mcp-code-executor user add` "
                "(hashed, in %s) instead",
                store.path,
            )
        for name, password in plain:
            self._plain[name] = (store.hasher.hash(password), password)

    @classmethod
    def from_settings(cls, settings: Settings, hasher: PasswordHasher | None = None):
        return cls(UserStore(settings.users_file, hasher), auth_pairs(settings))

    @property
    def enabled(self) -> bool:
        """Whether any user is configured (i.e. login is on)."""
        return bool(self._plain) or bool(self.store.names())

    def names(self) -> list[str]:
        return sorted(set(self.store.names()) | set(self._plain))

    def plain_names(self) -> list[str]:
        """Users that come from APP_AUTH (and are not shadowed by the file)."""
        return sorted(set(self._plain) - set(self.store.names()))

    def check(self, name: str, password: str) -> bool:
        if self.store.fingerprint(name) is not None or name not in self._plain:
            return self.store.verify(name, password)
        try:
            return self.store.hasher.verify(self._plain[name][0], password)
        except (VerificationError, InvalidHashError):
            return False

    def fingerprint(self, name: str) -> str | None:
        """Changes when the user's password changes; None once the user is gone. Secret
        material: only ever store it keyed-hashed."""
        stored = self.store.fingerprint(name)
        if stored is not None:
            return "file:" + stored
        if name in self._plain:
            return "plain:" + self._plain[name][1]
        return None
