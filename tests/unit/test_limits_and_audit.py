"""Per-user limits and the audit log: pure logic, no Docker."""

from __future__ import annotations

import json

import pytest

from executor import RateLimitedError, chat_key, split_key
from executor.audit import AuditLog, host_secrets
from executor.limits import UserLimits


def test_live_sessions_beyond_the_limit_are_refused_but_a_live_one_continues():
    limits = UserLimits(per_minute=0, concurrent=0, live_sessions=2)
    live = {"a", "b"}
    limits.check_session("alice", "a", live, 900)  # already live: fine
    with pytest.raises(RateLimitedError, match="2 live sessions"):
        limits.check_session("alice", "c", live, 900)


def test_chat_keys_round_trip_and_any_other_string_is_its_own_owner():
    for user, chat in [("alice", "c1"), ('we"ird', "[x]"), ("", "")]:
        assert split_key(chat_key(user, chat)) == (user, chat)
    assert split_key("plain") == ("plain", "plain")
    assert split_key("[not json") == ("[not json", "[not json")


def test_host_secrets_are_the_values_of_secret_looking_variables():
    environ = {"GOOGLE_API_KEY": "AIza-secret-1", "HOME": "/root", "DB_PASSWORD": "hunter22"}
    assert host_secrets(environ) == ["AIza-secret-1", "hunter22"]


def test_audit_lines_are_json_with_secrets_redacted(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=1 << 20, backups=1, secrets=["s3cr3t!"])
    key = chat_key("alice", "chat-1")
    log.record(key, "execute", "echo s3cr3t! | wc", duration_s=0.123456, exit_code=0, bytes_in=9)
    log.record(key, "upload", "a.txt", duration_s=0.1, error="QuotaExceededError: s3cr3t!")
    log.close()
    first, second = (
        json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()
    )
    assert (first["user"], first["session"], first["operation"]) == ("alice", "chat-1", "execute")
    assert first["target"] == "echo [REDACTED] | wc"
    assert (first["exit_code"], first["duration_s"], first["bytes_in"]) == (0, 0.1235, 9)
    assert second["error"] == "QuotaExceededError: [REDACTED]"


def test_the_audit_log_rotates_by_size(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=2000, backups=2, secrets=[])
    for i in range(100):
        log.record("u", "execute", f"command {i}", duration_s=0)
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    assert all(p.stat().st_size <= 2000 for p in tmp_path.iterdir())


def test_an_audit_log_without_a_path_records_nothing(tmp_path):
    AuditLog(None, max_bytes=1, backups=1).record("u", "execute", "x", duration_s=0)
    assert list(tmp_path.iterdir()) == []
