"""Exposure: no code execution for the network without login, unless explicitly allowed."""

from __future__ import annotations

import pytest

from frontend.exposure import (
    check_exposure,
    exposed_without_login,
    exposure_report,
    is_loopback,
)
from frontend.users import UserStore
from settings import ConfigError, load_settings
from tests.support.login_app import cheap_hasher


def settings(tmp_path, **env):
    base = {"APP_USERS_FILE": str(tmp_path / "users.toml")}
    return load_settings({**base, **{f"APP_{k.upper()}": v for k, v in env.items()}})


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST", "::ffff:127.0.0.1"]
)
def test_loopback_hosts(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.10", "example.org", "10.0.0.1"])
def test_hosts_reachable_from_the_network(host):
    assert not is_loopback(host)


def test_loopback_without_login_is_fine(tmp_path):
    assert check_exposure(settings(tmp_path)) == []


def test_network_without_login_is_refused_with_how_to_turn_login_on(tmp_path):
    with pytest.raises(ConfigError) as caught:
        check_exposure(settings(tmp_path, host="0.0.0.0"))
    message = str(caught.value)
    assert "APP_HOST=0.0.0.0" in message
    assert "mcp-code-executor user add" in message
    assert "APP_ALLOW_UNAUTHENTICATED=true" in message
    assert exposure_report(settings(tmp_path, host="0.0.0.0"))[0] == "fail"


def test_network_with_users_in_the_file_or_app_auth_starts(tmp_path):
    assert check_exposure(settings(tmp_path, host="0.0.0.0", auth="bob:builder")) == []
    UserStore(tmp_path / "users.toml", cheap_hasher()).add("alice", "correct horse")
    s = settings(tmp_path, host="0.0.0.0")
    assert check_exposure(s) == []
    assert not exposed_without_login(s)
    assert exposure_report(s)[0] == "ok"


def test_explicit_override_starts_with_a_loud_warning_and_a_header_flag(tmp_path):
    s = settings(tmp_path, host="0.0.0.0", allow_unauthenticated="true")
    warnings = check_exposure(s)
    assert len(warnings) == 1
    assert warnings[0].startswith("UNAUTHENTICATED")
    assert exposed_without_login(s)
    assert not exposed_without_login(settings(tmp_path, allow_unauthenticated="true"))


def test_mcp_tokens_protect_only_the_mcp_endpoint(tmp_path):
    with pytest.raises(ConfigError, match="chat UI has no login"):
        check_exposure(settings(tmp_path, host="0.0.0.0"), mcp_protected=True)
    with pytest.raises(ConfigError, match="MCP endpoint takes no bearer token"):
        check_exposure(settings(tmp_path, host="0.0.0.0"), login_enabled=True, mcp_protected=False)


def test_trusting_every_proxy_is_warned_about_off_loopback(tmp_path):
    s = settings(tmp_path, host="0.0.0.0", auth="bob:builder", trusted_proxies="*")
    assert any("APP_TRUSTED_PROXIES=*" in w for w in check_exposure(s))
