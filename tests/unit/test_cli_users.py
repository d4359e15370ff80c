"""`mcp-code-executor user ...`: add, list, passwd, remove against a temporary users file."""

from __future__ import annotations

import io
import stat

import pytest

from frontend.cli import main
from frontend.users import UserStore


@pytest.fixture
def users_file(tmp_path, monkeypatch):
    path = tmp_path / "users.toml"
    monkeypatch.setenv("APP_USERS_FILE", str(path))
    monkeypatch.delenv("APP_AUTH", raising=False)
    return path


def run(monkeypatch, *argv: str, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(["user", *argv])


def test_add_list_passwd_remove(users_file, monkeypatch, capsys):
    assert run(monkeypatch, "add", "alice", "--password-stdin", stdin="correct horse\n") == 0
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    assert UserStore(users_file).verify("alice", "correct horse")

    assert run(monkeypatch, "list") == 0
    assert "alice" in capsys.readouterr().out

    assert run(monkeypatch, "passwd", "alice", "--password-stdin", stdin="battery staple\n") == 0
    assert UserStore(users_file).verify("alice", "battery staple")
    assert not UserStore(users_file).verify("alice", "correct horse")

    assert run(monkeypatch, "remove", "alice") == 0
    assert UserStore(users_file).names() == []
    capsys.readouterr()
    assert run(monkeypatch, "list") == 0
    assert "login is off" in capsys.readouterr().out


def test_password_is_asked_twice_and_must_match(users_file, monkeypatch, capsys):
    answers = iter(["correct horse", "correct hose"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert run(monkeypatch, "add", "alice") == 1
    assert "differ" in capsys.readouterr().err
    assert not users_file.exists()


def test_mistakes_are_one_line_errors(users_file, monkeypatch, capsys):
    assert run(monkeypatch, "add", "a b", "--password-stdin", stdin="correct horse\n") == 1
    assert "bad user name" in capsys.readouterr().err
    assert run(monkeypatch, "add", "alice", "--password-stdin", stdin="short\n") == 1
    assert "at least 8" in capsys.readouterr().err
    assert run(monkeypatch, "add", "alice", "--password-stdin", stdin="correct horse\n") == 0
    assert run(monkeypatch, "add", "alice", "--password-stdin", stdin="correct horse\n") == 1
    assert "exists" in capsys.readouterr().err
    assert run(monkeypatch, "remove", "bob") == 1
    assert run(monkeypatch, "passwd", "bob", "--password-stdin", stdin="correct horse\n") == 1
    assert "no user" in capsys.readouterr().err


def test_list_shows_app_auth_users_as_plain_text(users_file, monkeypatch, capsys):
    monkeypatch.setenv("APP_AUTH", "bob:builder")
    assert run(monkeypatch, "list") == 0
    assert "bob  (APP_AUTH, plain text" in capsys.readouterr().out


def test_a_bad_or_taken_name_is_refused_before_asking_for_a_password(
    users_file, monkeypatch, capsys
):
    def no_prompt(prompt):
        raise AssertionError("asked for a password")

    monkeypatch.setattr("getpass.getpass", no_prompt)
    assert run(monkeypatch, "add", "a b") == 1
    UserStore(users_file).add("alice", "correct horse")
    assert run(monkeypatch, "add", "alice") == 1
    assert "exists" in capsys.readouterr().err
