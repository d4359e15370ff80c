"""The server refuses to serve code execution to the network without login, and says how to
turn login on; with the explicit override the page header warns loudly."""

from __future__ import annotations

import os
import subprocess
import sys

from agent.service import ModelInfo
from frontend.app import header
from settings import PROJECT_ROOT


def test_binding_to_the_network_without_login_refuses_to_start(tmp_path):
    env = {
        **os.environ,
        "APP_HOST": "0.0.0.0",
        "APP_AUTH": "",
        "APP_USERS_FILE": str(tmp_path / "users.toml"),
        "APP_DATA_DIR": str(tmp_path),
        "APP_ALLOW_UNAUTHENTICATED": "false",
        "DOCKER_HOST": "unix:///nonexistent.sock",  # it must refuse before touching Docker
    }
    result = subprocess.run(
        [sys.executable, "-m", "frontend.server"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Refusing to start" in result.stderr
    assert "user add" in result.stderr


class _Service:
    model = ModelInfo("offline", offline=True)
    models = (model,)


def test_the_header_warns_when_exposed_and_offers_logout_with_login():
    exposed = header(_Service(), login_required=False, exposed=True)
    assert "reachable from the network without login" in exposed
    assert "logout" not in exposed
    with_login = header(_Service(), login_required=True, exposed=False)
    assert "href='/logout'" in with_login
    assert "without login" not in with_login
