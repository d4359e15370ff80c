"""`mcp-code-executor mcp` and `python -m mcp_server` over stdio with the official client,
in both protocol revisions."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from executor import DockerExecutionClient
from tests.conftest import NO_EXTRAS

from .test_http import TOOLS

pytestmark = [pytest.mark.mcp, pytest.mark.docker]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stdio_env(docker_client, app_label, tmp_path_factory):
    data = tmp_path_factory.mktemp("mcp-stdio")
    label = f"{app_label}-io"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "APP_DATA_DIR": str(data),
        "EXECUTOR_APP_LABEL": label,
        "EXECUTOR_STATE_DIR": str(data / "executor"),
        "EXECUTOR_AUDIT_LOG": str(data / "audit.jsonl"),
        **{f"EXECUTOR_{k.upper()}": str(v) for k, v in NO_EXTRAS.items()},
    }
    yield env, data
    # The server removes its containers when the client closes it; the workspaces stay.
    leftovers = DockerExecutionClient(
        app_label=f"{label}-stdio", state_dir=data / "cleanup", audit_log=data / "cleanup.jsonl"
    )
    leftovers.cleanup_all(remove_volumes=True)


# The installed command (what a desktop client's config names) and the module.
LAUNCHERS = {
    "legacy": (str(Path(sys.executable).with_name("mcp-code-executor")), ["mcp"]),
    "auto": (sys.executable, ["-m", "mcp_server"]),
}


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_stdio_lists_tools_and_runs_bash(stdio_env, mode):
    env, data = stdio_env
    command, args = LAUNCHERS[mode]
    params = StdioServerParameters(command=command, args=args, env=env, cwd=str(ROOT))
    async with Client(params, mode=mode) as client:
        assert client.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        result = await client.call_tool("execute_bash", {"command": "echo $((6 * 7)) > a; cat a"})
        assert result.structured_content["stdout"] == "42\n"
        listed = await client.call_tool("list_sandboxes", {})
        assert [s["sandbox_id"] for s in listed.structured_content["sandboxes"]] == ["default"]
    audit = [json.loads(line) for line in (data / "audit.jsonl").read_text().splitlines()]
    ran = [a for a in audit if a["target"].startswith("echo $((6 * 7))")]
    assert ran
    assert all((a["user"], a["via"], a["transport"]) == ("local", "mcp", "stdio") for a in ran)
