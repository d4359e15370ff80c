"""Users file: argon2 hashes, 0600 atomic writes, rehashing, live reload; APP_AUTH fallback."""

from __future__ import annotations

import logging
import stat
import threading
import time
import tomllib

import pytest
from argon2 import PasswordHasher

from frontend.users import Authenticator, UserError, UserStore, validate_name
from settings import LOCAL_USER, ConfigError
from tests.support.login_app import cheap_hasher


@pytest.fixture
def store(tmp_path):
    return UserStore(tmp_path / "users.toml", cheap_hasher())


def test_added_user_logs_in_with_their_password_only(store):
    store.add("alice", "correct horse")
    assert store.verify("alice", "correct horse")
    assert not store.verify("alice", "correct horse ")
    assert not store.verify("bob", "correct horse")
    assert store.names() == ["alice"]


def test_file_holds_a_salted_hash_not_the_password_and_is_private(store):
    store.add("alice", "correct horse")
    store.add("bob", "correct horse")
    text = store.path.read_text()
    assert "correct horse" not in text
    users = tomllib.loads(text)["users"]
    assert users["alice"]["hash"].startswith("$argon2id$")
    assert users["alice"]["hash"] != users["bob"]["hash"]  # salted
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_writes_are_atomic_a_reader_never_sees_a_partial_file(store):
    store.add("alice", "first password")
    stop = threading.Event()
    seen: list[int] = []
    failures: list[Exception] = []

    def read_forever():
        while not stop.is_set():
            try:
                seen.append(len(tomllib.loads(store.path.read_text())["users"]))
            except (tomllib.TOMLDecodeError, KeyError) as exc:
                failures.append(exc)

    reader = threading.Thread(target=read_forever)
    reader.start()
    try:
        for i in range(30):
            store.set_password("alice", f"password number {i}")
            store.add(f"user{i}", "some password")
    finally:
        stop.set()
        reader.join()
    assert not failures
    assert len(seen) > 30
    assert store.verify("alice", "password number 29")
    leftovers = [p.name for p in store.path.parent.iterdir() if p.name.startswith(".users")]
    assert leftovers == []


def test_password_is_rehashed_when_the_parameters_change(tmp_path):
    path = tmp_path / "users.toml"
    UserStore(path, PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)).add(
        "alice", "correct horse"
    )
    stronger = UserStore(path, PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1))
    assert "m=1024,t=1" in path.read_text()
    assert stronger.verify("alice", "correct horse")
    assert "m=2048,t=2" in path.read_text()
    assert stronger.verify("alice", "correct horse")
    assert not stronger.verify("alice", "wrong horse")


def test_unknown_users_cost_a_verification_too(tmp_path):
    store = UserStore(tmp_path / "users.toml", PasswordHasher(time_cost=2, memory_cost=8192))
    store.add("alice", "correct horse")
    store.verify("nobody", "x")  # builds the dummy hash once

    def cost(name: str) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            store.verify(name, "wrong password")
            times.append(time.perf_counter() - started)
        return sorted(times)[2]

    known, unknown = cost("alice"), cost("nobody")
    assert unknown > known / 3, (known, unknown)


def test_a_second_process_sees_changes_at_the_next_lookup(tmp_path):
    app_view = UserStore(tmp_path / "users.toml", cheap_hasher())
    cli_view = UserStore(tmp_path / "users.toml", cheap_hasher())
    assert app_view.names() == []
    cli_view.add("alice", "correct horse")
    assert app_view.verify("alice", "correct horse")
    before = app_view.fingerprint("alice")
    cli_view.set_password("alice", "battery staple")
    assert app_view.fingerprint("alice") != before
    assert not app_view.verify("alice", "correct horse")
    cli_view.remove("alice")
    assert app_view.fingerprint("alice") is None
    assert not app_view.verify("alice", "battery staple")


@pytest.mark.parametrize("name", ["", "a b", "alice:x", "a,b", "-x", "ü", "x" * 65, "../x"])
def test_bad_names_are_refused_with_what_is_allowed(store, name):
    with pytest.raises(UserError, match="letters, digits"):
        store.add(name, "correct horse")
    assert not store.path.exists()


def test_good_names_pass():
    for name in ("alice", "Bob.Smith", "ops_1", "a@example.org", "x" * 64):
        assert validate_name(name) == name


def test_duplicate_unknown_and_weak_passwords_are_clear_errors(store):
    store.add("alice", "correct horse")
    with pytest.raises(UserError, match="exists"):
        store.add("alice", "another password")
    with pytest.raises(UserError, match="no user"):
        store.set_password("bob", "another password")
    with pytest.raises(UserError, match="no user"):
        store.remove("bob")
    with pytest.raises(UserError, match="at least 8"):
        store.add("carol", "short")


def test_a_broken_file_names_the_setting(tmp_path):
    path = tmp_path / "users.toml"
    path.write_text("[users.alice\nhash = 1")
    with pytest.raises(ConfigError, match="APP_USERS_FILE"):
        UserStore(path).names()
    path.write_text('[users."alice"]\nhash = "plain"\n')
    with pytest.raises(ConfigError, match="no argon2 hash"):
        UserStore(path).names()


def test_a_file_readable_by_others_is_warned_about(store, caplog):
    store.add("alice", "correct horse")
    store.path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        UserStore(store.path, cheap_hasher()).names()
    assert "chmod 600" in caplog.text


def test_app_auth_pairs_still_log_in_with_a_warning(store, caplog):
    with caplog.at_level(logging.WARNING):
        auth = Authenticator(store, [("bob", "builder")])
    assert "plain-text passwords in APP_AUTH" in caplog.text
    assert "mcp-code-executor user add" in caplog.text
    assert auth.enabled
    assert auth.check("bob", "builder")
    assert not auth.check("bob", "wrong")
    assert not auth.check("nobody", "builder")
    assert auth.plain_names() == ["bob"]


def test_the_users_file_shadows_app_auth_and_fingerprints_follow_passwords(store):
    auth = Authenticator(store, [("alice", "plain one")])
    plain_print = auth.fingerprint("alice")
    store.add("alice", "hashed password")
    assert auth.check("alice", "hashed password")
    assert not auth.check("alice", "plain one")
    assert auth.fingerprint("alice") != plain_print
    assert auth.fingerprint("ghost") is None


def test_no_users_means_no_login(store):
    auth = Authenticator(store)
    assert not auth.enabled
    assert auth.names() == []
    assert LOCAL_USER == "local"


def test_an_mcp_token_made_without_a_user_reaches_the_web_uis_chats(tmp_path):
    """`mcp-code-executor token create NAME` (no --user) must belong to the user the web UI
    gives everyone when login is off, or a fresh install's MCP client sees none of its chats."""
    import dataclasses

    from frontend.login import LoginLayer
    from mcp_server.cli import token_main, token_store
    from settings import load_settings

    settings = dataclasses.replace(
        load_settings({}), data_dir=tmp_path, users_file=tmp_path / "users.toml"
    )
    assert token_main(["create", "laptop"], settings) == 0
    store = token_store(settings)
    try:
        (token,) = store.list()
    finally:
        store.close()
    web_user, _, _ = LoginLayer.from_settings(settings).authenticate({"type": "http"})
    assert token.user == web_user == LOCAL_USER
