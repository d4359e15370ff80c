"""Bad settings refused at start, as an operator meets them: each real entry point in a
subprocess exits with code 2 and the settings' message (no traceback), having made nothing: no
data, state or audit folder, no container or volume.

The in-process checks of each kind of setting are in tests/unit/test_settings.py; here each kind
goes through a real entry point, and every entry point through one environment with several.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from settings import PROJECT_ROOT
from tests.conftest import app_containers

pytestmark = pytest.mark.docker

PYTHON = sys.executable
ADK = str(Path(sys.executable).parent / "adk")
MAKE_RUN = [PYTHON, "-m", "frontend.cli", "run"]  # what `make run` starts after the image step
MAKE_DOCTOR = [PYTHON, "-m", "frontend.cli", "doctor"]

ENTRY_POINTS = {
    "make run (image step)": [PYTHON, "-m", "executor.image", "build"],
    "make run": MAKE_RUN,
    "python -m frontend.server": [PYTHON, "-m", "frontend.server"],  # the web app's own module
    "make doctor": MAKE_DOCTOR,
    "cli cleanup": [PYTHON, "-m", "frontend.cli", "cleanup", "--yes"],
    "cli user list": [PYTHON, "-m", "frontend.cli", "user", "list"],
    "python -m mcp_server": [PYTHON, "-m", "mcp_server"],
    "mcp-code-executor mcp": [PYTHON, "-m", "frontend.cli", "mcp"],
    "adk run agent": [ADK, "run", "agent"],
}


def refused(argv: list[str], bad: dict[str, str], tmp_path: Path, docker_client) -> str:
    """Run `argv` with the `bad` settings; assert it refused (exit 2, nothing made); its output."""
    label = f"mce-refuse-{uuid.uuid4().hex[:8]}"
    made = tmp_path / "never"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "EXECUTOR_"))}
    # Not PYTHONPATH: ADK's loader puts agent/ itself first on sys.path, and with the project
    # root on PYTHONPATH it would import agent/agent.py as the top-level package `agent`.
    env.pop("PYTHONPATH", None)
    env.update(
        {
            "EXECUTOR_APP_LABEL": label,
            "APP_DATA_DIR": str(made / "data"),
            "EXECUTOR_STATE_DIR": str(made / "state"),
            "EXECUTOR_AUDIT_LOG": str(made / "audit" / "audit.jsonl"),
            "APP_USERS_FILE": str(made / "users.toml"),
            **bad,
        }
    )
    done = subprocess.run(
        argv,
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=180,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output
    assert "Refusing to start:" in done.stderr
    assert not made.exists(), sorted(str(p) for p in made.rglob("*"))
    assert app_containers(docker_client, label) == []
    volumes = docker_client.volumes.list(filters={"label": f"mcp-code-executor.app={label}"})
    assert volumes == []
    return output


# The two that crashed `make run` with a traceback before.
@pytest.mark.parametrize(
    ("bad", "said"),
    [
        ({"EXECUTOR_ENGINE": "k8s"}, "EXECUTOR_ENGINE='k8s' cannot be used: expected one of"),
        ({"EXECUTOR_TMP_SIZE_BYTES": "1g"}, "EXECUTOR_TMP_SIZE_BYTES='1g'"),
    ],
)
def test_make_run_refuses_what_used_to_crash_it(bad, said, tmp_path, docker_client):
    assert said in refused(MAKE_RUN, bad, tmp_path, docker_client)


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        ({"APP_AGENT_TOOLS": "MCP"}, "APP_AGENT_TOOLS='MCP' cannot be used: expected one of"),
        ({"EXECUTOR_MEMORY_LIMIT_BYTES": "lots"}, "expected a size such as"),
        ({"EXECUTOR_PIDS_LIMIT": "4"}, "EXECUTOR_PIDS_LIMIT='4' cannot be used: expected a"),
        ({"EXECUTOR_APP_LABEL": "Shared App"}, "EXECUTOR_APP_LABEL='Shared App'"),
        ({"APP_CHATS_PER_BROWSER": "perhaps"}, "expected true or false"),
        ({"APP_AUTH": "alice"}, "APP_AUTH='alice' cannot be used: expected user:password"),
    ],
    ids=["choice", "size", "number", "label", "boolean", "format"],
)
def test_each_kind_of_bad_setting_stops_doctor_in_words(bad, said, tmp_path, docker_client):
    assert said in refused(MAKE_DOCTOR, bad, tmp_path, docker_client)


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_every_entry_point_refuses_naming_every_bad_setting(entry, tmp_path, docker_client):
    bad = {"EXECUTOR_ENGINE": "k8s", "EXECUTOR_TMP_SIZE_BYTES": "1g", "APP_PORT": "-1"}
    output = refused(ENTRY_POINTS[entry], bad, tmp_path, docker_client)
    assert "3 settings cannot be used" in output
    for variable in ("EXECUTOR_ENGINE='k8s'", "EXECUTOR_TMP_SIZE_BYTES='1g'", "APP_PORT='-1'"):
        assert variable in output
