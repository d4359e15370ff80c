"""Session cookies: signature, idle and absolute expiry, refresh, secret file, logout list."""

from __future__ import annotations

import stat

import pytest

from frontend.login import cookie_header, safe_next
from frontend.sessions import RevokedSessions, SessionCodec, load_secret
from tests.support.login_app import FakeClock

SECRET = b"s" * 32


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def codec(clock):
    return SessionCodec(SECRET, idle_timeout_s=3600, max_age_s=86400, clock=clock)


def test_a_cookie_round_trips_and_carries_no_password(codec):
    session = codec.issue("alice", "file:$argon2id$...hash")
    value = codec.encode(session)
    assert codec.decode(value) == session
    assert "argon2" not in value
    assert codec.matches(session, "file:$argon2id$...hash")
    assert not codec.matches(session, "file:$argon2id$...other")
    assert not codec.matches(session, None)


def test_tampered_or_foreign_cookies_are_rejected(codec, clock):
    value = codec.encode(codec.issue("alice", "x"))
    payload, _, signature = value.partition(".")
    forged = codec.encode(codec.issue("mallory", "x")).split(".")[0] + "." + signature
    assert codec.decode(forged) is None
    assert codec.decode(payload + ".") is None
    assert codec.decode("garbage") is None
    other = SessionCodec(b"o" * 32, idle_timeout_s=3600, max_age_s=86400, clock=clock)
    assert other.decode(value) is None
    assert other.cookie_name != codec.cookie_name  # two apps on one host keep their cookies


def test_idle_sessions_expire_and_activity_keeps_them(codec, clock):
    session = codec.issue("alice", "x")
    clock.advance(3599)
    assert not codec.expired(session)
    clock.advance(1)
    assert codec.expired(session)

    session = codec.issue("alice", "x")
    for _ in range(10):  # ten hours of a request every 30 minutes
        clock.advance(1800)
        assert not codec.expired(session)
        session = codec.touched(session) or session
    assert not codec.expired(session)


def test_the_absolute_limit_ends_even_an_active_session(codec, clock):
    session = codec.issue("alice", "x")
    for _ in range(48):
        clock.advance(1800)
        session = codec.touched(session) or session
    assert codec.expired(session)


def test_refresh_is_only_issued_when_due(codec, clock):
    session = codec.issue("alice", "x")
    clock.advance(10)
    assert codec.touched(session) is None
    clock.advance(60)
    assert codec.touched(session).seen == clock.now
    assert codec.cookie_max_age(session) == 86400 - 70


def test_cookie_flags_http_only_same_site_and_secure_only_over_https():
    plain = cookie_header("c", "v", max_age=60, secure=False)
    assert "HttpOnly" in plain
    assert "SameSite=Lax" in plain
    assert "Secure" not in plain
    assert "Secure" in cookie_header("c", "v", max_age=60, secure=True)


def test_secret_is_created_private_and_kept(tmp_path):
    path = tmp_path / "data" / "session-secret"
    first = load_secret(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 32
    assert load_secret(path) == first


def test_logged_out_sessions_stay_out_across_restarts_until_expiry(tmp_path, clock):
    path = tmp_path / "revoked.json"
    RevokedSessions(path, clock).add("sid-1", clock.now + 100)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = RevokedSessions(path, clock)
    assert "sid-1" in again
    assert "sid-2" not in again
    clock.advance(100)
    assert "sid-1" not in again
    again.add("sid-3", clock.now + 5)
    assert "sid-1" not in path.read_text()  # expired entries are dropped


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/", "/"),
        ("/?tab=2", "/?tab=2"),
        ("/gradio_api/file=x", "/gradio_api/file=x"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("evil.example", "/"),
        ("/login?next=/", "/"),
        ("/logout", "/"),
        ("/x\r\nSet-Cookie: a=b", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_next_only_goes_to_local_paths(value, expected):
    assert safe_next(value) == expected
