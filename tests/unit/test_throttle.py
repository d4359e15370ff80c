"""Login throttle: back-off per user and per address, in simulated time (no sleeping)."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from executor.audit import AuditLog
from frontend.login import LoginLayer
from frontend.throttle import LoginThrottle
from frontend.users import Authenticator, UserStore
from settings import load_settings
from tests.support.login_app import FakeClock, cheap_hasher


def test_back_off_starts_after_max_failures_and_doubles_up_to_the_cap():
    clock = FakeClock()
    throttle = LoginThrottle(max_failures=5, base_delay_s=1, max_delay_s=900, clock=clock)
    waits = []
    for _ in range(20):
        waits.append(throttle.record_failure("alice", "10.0.0.1"))
        clock.advance(throttle.check("alice", "10.0.0.1"))
    assert waits[:4] == [0, 0, 0, 0]
    assert waits[4:12] == [1, 2, 4, 8, 16, 32, 64, 128]
    assert waits[-1] == 900


def test_the_wait_runs_down_with_time():
    clock = FakeClock()
    throttle = LoginThrottle(max_failures=1, base_delay_s=10, clock=clock)
    throttle.record_failure("alice", "10.0.0.1")
    clock.advance(4)
    assert throttle.check("alice", "10.0.0.1") == pytest.approx(6)
    clock.advance(6)
    assert throttle.check("alice", "10.0.0.1") == 0


def test_the_user_is_locked_from_every_address_and_the_address_for_every_user():
    throttle = LoginThrottle(max_failures=2, clock=FakeClock())
    throttle.record_failure("alice", "10.0.0.1")
    throttle.record_failure("alice", "10.0.0.2")
    assert throttle.check("alice", "10.0.0.3") > 0  # guesses spread over addresses
    throttle.record_failure("bob", "10.0.0.9")
    throttle.record_failure("carol", "10.0.0.9")
    assert throttle.check("dave", "10.0.0.9") > 0  # one address spraying user names
    assert throttle.check("erin", "10.0.0.4") == 0


def test_success_clears_that_user_and_address():
    throttle = LoginThrottle(max_failures=2, clock=FakeClock())
    throttle.record_failure("alice", "10.0.0.1")
    throttle.record_success("alice", "10.0.0.1")
    throttle.record_failure("alice", "10.0.0.1")
    assert throttle.check("alice", "10.0.0.1") == 0


def test_memory_is_bounded_and_old_entries_expire():
    clock = FakeClock()
    throttle = LoginThrottle(max_entries=1000, forget_after_s=3600, clock=clock)
    for i in range(5000):
        throttle.record_failure(f"user{i}", f"10.{i // 250}.{i % 250}.1")
    assert len(throttle) <= 1000
    clock.advance(3600)
    throttle.record_failure("late", "10.9.9.9")
    assert len(throttle) == 2


def test_forgetting_resets_the_count():
    clock = FakeClock()
    throttle = LoginThrottle(max_failures=2, forget_after_s=3600, clock=clock)
    throttle.record_failure("alice", "10.0.0.1")
    clock.advance(3601)
    assert throttle.record_failure("alice", "10.0.0.1") == 0


@pytest.fixture
def policy(tmp_path):
    """The real login policy (throttle + argon2 + audit) without HTTP, on a fake clock."""
    clock = FakeClock()
    settings = dataclasses.replace(
        load_settings({}), data_dir=tmp_path, users_file=tmp_path / "users.toml"
    )
    store = UserStore(settings.users_file, cheap_hasher())
    store.add("alice", "correct horse")
    audit = AuditLog(tmp_path / "audit.jsonl", max_bytes=1 << 20, backups=1, secrets=[])
    layer = LoginLayer.from_settings(
        settings, authenticator=Authenticator(store), audit=audit, clock=clock, monotonic=clock
    )
    return layer, clock


async def test_hundred_wrong_passwords_take_hours_then_the_right_one_works(policy):
    layer, clock = policy
    started = clock.now
    checked = 0
    while checked < 100:
        result = await layer.attempt("alice", f"guess {checked}", "10.0.0.66")
        assert result.session is None
        if result.checked:
            checked += 1
        clock.advance(layer.throttle.check("alice", "10.0.0.66"))  # only what it demands
    spent = clock.now - started
    assert spent > 10 * 60, f"100 guesses in {spent:.0f} s of simulated time"  # it is ~21.8 h

    # Right after the 100th failure the right password still has to wait...
    clock.now -= 1  # step back into the lock-out window
    locked = await layer.attempt("alice", "correct horse", "10.0.0.66")
    assert locked.session is None
    assert not locked.checked
    assert locked.wait_s > 0
    # ...and works once the window has passed.
    clock.advance(locked.wait_s)
    ok = await layer.attempt("alice", "correct horse", "10.0.0.66")
    assert ok.session is not None
    assert ok.session.user == "alice"


async def test_failures_and_lock_outs_are_audited_without_the_password(policy, tmp_path):
    layer, clock = policy
    for i in range(6):
        await layer.attempt("alice", f"secret-guess-{i}", "10.0.0.7")
        clock.advance(layer.throttle.check("alice", "10.0.0.7"))
    await layer.attempt("alice", "correct horse", "10.0.0.7")
    text = (tmp_path / "audit.jsonl").read_text()
    assert "secret-guess" not in text
    assert "correct horse" not in text
    entries = [json.loads(line) for line in text.splitlines()]
    operations = [e["operation"] for e in entries]
    assert operations.count("login_failed") == 6
    assert "login_locked" in operations
    assert operations[-1] == "login"
    assert {e["target"] for e in entries} == {"10.0.0.7"}
    assert {e["user"] for e in entries} == {"alice"}


async def test_parallel_guesses_cannot_slip_past_the_lock_out(policy):
    layer, _ = policy
    results = await asyncio.gather(
        *(layer.attempt("alice", f"guess {i}", "10.0.0.8") for i in range(50))
    )
    assert sum(r.checked for r in results) <= layer.throttle.max_failures
