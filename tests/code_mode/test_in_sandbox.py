"""Code mode end to end: real MCP servers on the host, called from code in real sandboxes over
the runner's channel (mcp-server-time from PyPI, server-everything from npm, our demo servers,
a streamable-HTTP server behind a bearer token, and a hostile one)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from code_mode import McpHub
from settings import PROJECT_ROOT
from tests.support import free_port

from .conftest import HOSTILE, TOKEN, config, installed, remote, start_http_server

pytestmark = [pytest.mark.docker, pytest.mark.code_mode]

SECRET_ENV = "env-secret-8c1d5e7a"
SECRET_TOKEN = TOKEN  # the HTTP server's bearer token, from ${REMOTE_TOKEN}


class Borrowed:
    """A hub lent to one test's executor: the executor closes what it owns, and this hub
    serves the whole module (its servers start once)."""

    def __init__(self, hub: McpHub) -> None:
        self._hub = hub

    def tree(self, owner):
        return self._hub.tree(owner)

    async def call(self, ctx, server, tool, arguments):
        return await self._hub.call(ctx, server, tool, arguments)


@pytest.fixture(scope="module")
def hub(tmp_path_factory, request):

    data = tmp_path_factory.mktemp("code-mode-data")
    port = free_port()
    http = start_http_server(port)
    sample = json.loads((PROJECT_ROOT / "samples" / "mcp_servers.json").read_text())["mcpServers"]
    servers = {
        "time": {"command": installed("py/bin/mcp-server-time")},
        "everything": {
            "command": installed("node/node_modules/.bin/mcp-server-everything"),
            "args": ["stdio"],
            "env": {"DEMO_SECRET": "${SECRET_VALUE}"},
        },
        "remote": remote(port),
        "hostile": {"command": HOSTILE[0], "args": HOSTILE[1:]},
        "bobs-only": {"command": HOSTILE[0], "args": HOSTILE[1:], "users": ["bob"]},
    }
    for name in ("docs", "crm"):
        entry = dict(sample[name])
        entry["command"] = sys.executable
        entry["args"] = [str(PROJECT_ROOT / a) for a in entry["args"]]
        servers[name] = entry
    environ = {"REMOTE_TOKEN": TOKEN, "SECRET_VALUE": SECRET_ENV, "APP_DATA_DIR": str(data)}
    made = McpHub(config(servers, environ), catalog_path=data / "catalog.json")
    made.data = data
    yield made
    made.close()
    http.terminate()
    http.wait(timeout=10)


@pytest.fixture
def sandbox(make_executor, hub):
    return make_executor(tool_bridge=Borrowed(hub), tool_call_timeout_s=30)


async def test_a_pypi_server_answers_from_run_python_with_structured_content(sandbox, user_id):
    result = await sandbox.run_python(
        user_id, "from tools.mcp import time\nnow = time.get_current_time(timezone='UTC')\nnow"
    )
    assert result.exit_code == 0, result.stderr
    value = eval(result.stdout)
    assert value["timezone"] == "UTC"
    assert {"datetime", "is_dst"} <= set(value)
    assert [(c.server, c.tool, c.ok) for c in result.tool_calls] == [
        ("time", "get_current_time", True)
    ]


async def test_an_npm_server_with_kebab_names_images_and_structure_from_a_script(sandbox, user_id):
    script = (
        "from tools.mcp import everything\n"
        "image = [i for i in everything.get_tiny_image() if i['type'] == 'image'][0]\n"
        "weather = everything.get_structured_content(location='Chicago')\n"
        "print(image['mime_type'], sorted(weather))\n"
    )
    await sandbox.write_file(user_id, "script.py", script)
    result = await sandbox.run(user_id, "python3 script.py")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "image/png ['conditions', 'humidity', 'temperature']\n"
    listing = await sandbox.run(user_id, "ls /tools/mcp; grep -c '^def ' /tools/mcp/everything.py")
    assert "everything.py" in listing.stdout
    assert "bobs_only.py" not in listing.stdout  # another user's server is not even listed


async def test_eight_threads_call_a_long_running_tool_at_once(sandbox, user_id):
    code = (
        "import concurrent.futures, time\nfrom tools.mcp import everything\n"
        "t = time.monotonic()\n"
        "with concurrent.futures.ThreadPoolExecutor(8) as pool:\n"
        "    done = list(pool.map(lambda i: everything.trigger_long_running_operation("
        "duration=1, steps=2), range(8)))\n"
        "print(len(done), round(time.monotonic() - t, 1))\n"
    )
    result = await sandbox.run_python(user_id, code, timeout=60)
    count, seconds = result.stdout.split()
    assert count == "8", result.stderr
    assert float(seconds) < 4


async def test_the_transcript_moves_from_docs_to_crm_without_leaving_the_sandbox(
    sandbox, hub, user_id
):
    code = (
        "from tools.mcp import docs, crm\n"
        "meeting = [d for d in docs.list_documents() if d['id'].startswith('meeting-')][0]\n"
        "text = docs.get_document(document_id=meeting['id'])['text']\n"
        "saved = crm.update_record(record_id='acme-001', notes=text)\n"
        "print(len(text), saved['notes_chars'])\n"
    )
    result = await sandbox.run_python(user_id, code)
    length, saved = result.stdout.split()
    assert int(length) > 45_000
    assert saved == length
    assert len(result.stdout) < 100  # the transcript never came back through the output
    stored = json.loads((hub.data / "crm.json").read_text())
    assert len(stored["acme-001"]["notes"]) == int(length)


async def test_a_streamable_http_server_behind_a_bearer_token(sandbox, user_id):
    result = await sandbox.run_python(
        user_id, "from tools.mcp import remote\nremote.numbers(count=3)"
    )
    assert result.stdout.strip() == "[0, 1, 2]", result.stderr


async def test_no_credential_header_or_env_value_ever_enters_the_sandbox(sandbox, user_id):
    await sandbox.run_python(user_id, "from tools.mcp import remote, time\nremote.numbers(count=1)")
    secrets = [SECRET_ENV, SECRET_TOKEN, "REMOTE_TOKEN", "SECRET_VALUE"]
    pattern = "|".join(secrets)
    search = (
        f"grep -rlE {shlex.quote(pattern)} /tools /workspace /tmp /home /opt 2>/dev/null; "
        f"cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -E {shlex.quote(pattern)}; "
        f"env | grep -E {shlex.quote(pattern)}; echo searched"
    )
    result = await sandbox.run(user_id, search)
    assert result.stdout == "searched\n", result.stdout


async def test_another_users_server_is_refused_however_the_call_is_made(sandbox, hub, user_id):
    code = (
        "from tools.mcp import McpToolError\n"
        "try:\n    from tools.mcp import bobs_only\n"
        "except ImportError as e:\n    print('import:', e)\n"
        "from tools.mcp._runtime import call\n"
        "for server, tool in (('bobs-only', 'pid'), ('time', 'no_such_tool')):\n"
        "    try:\n        call(server, tool, {})\n    except McpToolError as e:\n"
        "        print('refused:', e)\n"
    )
    result = await sandbox.run_python(user_id, code)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("import:"), result.stderr
    assert len(lines) == 3
    assert all(line.startswith("refused:") for line in lines[1:])
    bobs = next(s for s in hub.statuses() if s.name == "bobs-only")
    assert bobs.pid is None  # never started for a forged call


async def test_a_tampered_stub_changes_nothing_the_host_allows(sandbox, user_id):
    tamper = (
        "sed -i \"s/_call('time', 'get_current_time'/_call('bobs-only', 'pid'/\" "
        "/tools/mcp/time.py && grep -c bobs-only /tools/mcp/time.py"
    )
    await sandbox.run_python(user_id, "import tools.mcp")  # the tree is installed
    assert (await sandbox.run(user_id, tamper)).stdout.strip() == "1"
    code = (
        "from tools.mcp import time, McpToolError\n"
        "try:\n    time.get_current_time(timezone='UTC')\nexcept McpToolError as e:\n"
        "    print('refused:', e)\n"
    )
    result = await sandbox.run(user_id, f"python3 -c {shlex.quote(code)}")
    assert result.stdout.startswith("refused:"), result.stdout + result.stderr


async def test_a_server_that_crashes_mid_call_fails_that_call_and_serves_the_next(sandbox, user_id):
    code = (
        "from tools.mcp import hostile, McpToolError\n"
        "try:\n    hostile.crash()\nexcept McpToolError as e:\n    print('crashed:', e)\n"
        "print(hostile.echo(text='back again'))\n"
    )
    result = await sandbox.run_python(user_id, code, timeout=60)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("crashed:"), result.stderr
    assert lines[1] == "back again"
    assert [c.ok for c in result.tool_calls] == [False, True]


async def test_a_hanging_server_is_ended_by_the_commands_timeout(sandbox, user_id):
    result = await sandbox.run_python(
        user_id, "from tools.mcp import hostile\nhostile.hang()", timeout=3
    )
    assert result.timed_out
    again = await sandbox.run_python(
        user_id, "from tools.mcp import time\ntime.get_current_time(timezone='UTC')['timezone']"
    )
    assert again.stdout.strip() == "'UTC'"


async def test_every_bridged_call_is_an_audit_line_without_credentials(
    make_executor, hub, user_id, tmp_path
):
    audit = tmp_path / "audit.jsonl"
    client = make_executor(tool_bridge=Borrowed(hub), audit_log=audit)
    await client.run_python(user_id, "from tools.mcp import remote\nremote.numbers(count=2)")
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    calls = [line for line in lines if line["operation"] == "mcp_call"]
    assert [c["target"] for c in calls] == ["remote.numbers"]
    assert calls[0]["bytes_in"] > 0
    assert calls[0]["bytes_out"] > 0
    assert "duration_s" in calls[0]
    assert SECRET_TOKEN not in audit.read_text()
    assert user_id in calls[0]["session"] or user_id in calls[0]["user"]


def test_the_runtime_module_is_what_the_stubs_import():
    runtime = (PROJECT_ROOT / "executor" / "sandbox_side" / "mcp_runtime.py").read_text()
    assert "class McpToolError(Exception)" in runtime
    assert "def call(server, tool, arguments)" in runtime
    assert Path(PROJECT_ROOT / "tools" / "mcp").is_dir()  # the mount point of /tools/mcp
