"""The MCP endpoint over HTTP with the official client, in both protocol revisions, real Docker."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import subprocess
import sys
import time
import zlib
from itertools import pairwise

import httpx
import pytest
from mcp.shared.exceptions import MCPError
from mcp.types import ImageContent, ResourceLink, TextContent

from executor import chat_key
from mcp_server._transfer import URI_TEMPLATE

from .conftest import MODES, mcp_client

pytestmark = [pytest.mark.mcp, pytest.mark.docker]

TOOLS = {
    "execute_bash",
    "run_python",
    "reset_python",
    "read_file",
    "write_file",
    "upload_file",
    "download_file",
    "list_files",
    "read_docstring",
    "list_tools",
    "search_tools",
    "create_sandbox",
    "list_sandboxes",
    "close_sandbox",
}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw-httpx", "version": "0"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def tools_call(name: str, arguments: dict) -> dict:
    return {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


def text_of(result) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


async def new_sandbox(client, title: str) -> str:
    made = await client.call_tool("create_sandbox", {"title": title})
    assert not made.is_error, text_of(made)
    return made.structured_content["sandbox_id"]


def tiny_png() -> bytes:
    """A real 1x1 PNG."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("mode", MODES)
async def test_lists_tools_and_runs_bash(mcp_env, mode):
    async with mcp_client(mcp_env.url, mcp_env.token["alice"], mode) as client:
        assert client.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
        listed = {t.name: t for t in (await client.list_tools()).tools}
        assert set(listed) == TOOLS
        assert listed["execute_bash"].input_schema["properties"]["timeout"]["maximum"] == 3600
        assert "20,000 characters" in listed["execute_bash"].description
        templates = await client.list_resource_templates()
        assert [t.uri_template for t in templates.resource_templates] == [URI_TEMPLATE]

        result = await client.call_tool("execute_bash", {"command": "echo hi; echo oops >&2"})
    assert not result.is_error
    data = result.structured_content
    assert (data["exit_code"], data["stdout"], data["stderr"]) == (0, "hi\n", "oops\n")
    assert data["sandbox_id"] == "default"
    lines = [a for a in mcp_env.audit() if a["target"] == "echo hi; echo oops >&2"]
    assert lines
    assert all(
        (a["user"], a["via"], a["transport"], a["token"])
        == ("alice", "mcp", "http", "alice-laptop")
        for a in lines
    )


@pytest.mark.parametrize("mode", MODES)
async def test_progress_streams_output_before_the_command_ends(mcp_env, mode):
    seen: list[tuple[float, float, float | None, str | None]] = []

    async def on_progress(progress, total, message):
        seen.append((time.monotonic(), progress, total, message))

    async with mcp_client(mcp_env.url, mcp_env.token["alice"], mode) as client:
        started = time.monotonic()
        result = await client.call_tool(
            "execute_bash",
            {"command": "echo start; sleep 6; echo end", "timeout": 30},
            progress_callback=on_progress,
        )
        ended = time.monotonic()
    assert result.structured_content["stdout"] == "start\nend\n"
    first_output = next(t for t, _, _, m in seen if m and "start" in m)
    assert ended - first_output > 4, "the first output must arrive while the command runs"
    times = [started, *(t for t, _, _, _ in seen), ended]
    gaps = [b - a for a, b in pairwise(times)]
    assert max(gaps) < 5, f"a silent command still gets a notification every <5 s: {gaps}"
    assert len([m for _, _, _, m in seen if m is None]) >= 2  # heartbeats during the sleep
    progress = [p for _, p, _, _ in seen]
    assert progress == sorted(set(progress))  # strictly increasing, as the spec requires
    assert {total for _, _, total, _ in seen} == {30}


async def _processes(client, sandbox_id: str) -> str:
    started = time.monotonic()
    ps = await client.call_tool(
        "execute_bash", {"command": "ps -eo args", "sandbox_id": sandbox_id, "timeout": 20}
    )
    assert time.monotonic() - started < 10, "the sandbox was still busy with the old command"
    return ps.structured_content["stdout"]


@pytest.mark.parametrize("mode", MODES)
async def test_cancelling_the_request_kills_the_command(mcp_env, mode):
    async with mcp_client(mcp_env.url, mcp_env.token["alice"], mode) as client:
        sandbox = await new_sandbox(client, f"cancel {mode}")
        running = asyncio.Event()

        async def on_progress(progress, total, message):
            if message and "started" in message:
                running.set()

        call = asyncio.create_task(
            client.call_tool(
                "execute_bash",
                {
                    "command": "echo started; sleep 300 & sleep 301; echo never",
                    "timeout": 600,
                    "sandbox_id": sandbox,
                },
                progress_callback=on_progress,
            )
        )
        await asyncio.wait_for(running.wait(), 30)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        left = await _processes(client, sandbox)
    assert "sleep 30" not in left, left


CHILD = """
import asyncio, sys
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

async def main():
    url, token, mode, sandbox = sys.argv[1:5]
    http = create_mcp_http_client(headers={"Authorization": "Bearer " + token})
    async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
        async def on_progress(progress, total, message):
            if message and "started" in message:
                print("running", flush=True)
        await client.call_tool(
            "execute_bash",
            {"command": "echo started; sleep 300 & sleep 301", "timeout": 600,
             "sandbox_id": sandbox},
            progress_callback=on_progress,
        )

asyncio.run(main())
"""


@pytest.mark.parametrize("mode", MODES)
async def test_a_dropped_client_kills_the_command(mcp_env, mode):
    async with mcp_client(mcp_env.url, mcp_env.token["alice"], mode) as client:
        sandbox = await new_sandbox(client, f"drop {mode}")
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        mcp_env.url,
        mcp_env.token["alice"],
        mode,
        sandbox,
        stdout=subprocess.PIPE,
    )
    try:
        assert await asyncio.wait_for(child.stdout.readline(), 60) == b"running\n"
    finally:
        child.kill()  # SIGKILL: no goodbye, the connection just drops
        await child.wait()
    await asyncio.sleep(1.5)
    async with mcp_client(mcp_env.url, mcp_env.token["alice"], mode) as client:
        left = await _processes(client, sandbox)
    assert "sleep 30" not in left, left


async def test_a_50_mb_output_comes_back_capped(mcp_env):
    seen: list[str] = []

    async def on_progress(progress, total, message):
        if message:
            seen.append(message)

    async with mcp_client(mcp_env.url, mcp_env.token["alice"]) as client:
        result = await client.call_tool(
            "execute_bash",
            {
                # 50 MB over about a second, so some of it streams live too
                "command": "for i in $(seq 50); do head -c 1000000 /dev/zero | tr '\\0' x; "
                "sleep 0.02; done; echo done >&2",
                "timeout": 120,
            },
            progress_callback=on_progress,
        )
    assert not result.is_error
    data = result.structured_content
    assert data["exit_code"] == 0
    assert data["stderr"] == "done\n"
    assert 15_000 < len(data["stdout"]) < 21_000
    assert "characters cut from the middle" in data["stdout"]
    assert data["output_cut"]["stdout_bytes_dropped"] > 48_000_000
    assert "stdout was shortened" in data["note"]
    size = len(result.model_dump_json(by_alias=True).encode())
    assert size < 256 << 10, f"result is {size} bytes; it must stay well under 1 MiB"
    assert seen
    assert all(len(m) < 9000 for m in seen)


async def test_users_cannot_reach_each_others_sandboxes(mcp_env):
    chat = await mcp_env.on_server(mcp_env.service.new_session("alice"))
    async with mcp_client(mcp_env.url, mcp_env.token["alice"]) as alice:
        theirs = await new_sandbox(alice, "alice's")
        for sandbox_id in (theirs, "", chat):
            wrote = await alice.call_tool(
                "write_file",
                {"path": "secret.txt", "content": "alice only", "sandbox_id": sandbox_id},
            )
            assert not wrote.is_error, text_of(wrote)

    async with mcp_client(mcp_env.url, mcp_env.token["bob"]) as bob:
        refusals = {}
        for guess in (theirs, chat, "sb-0123456789abcdef", "0123456789abcdef0123456789abcdef"):
            result = await bob.call_tool("read_file", {"path": "secret.txt", "sandbox_id": guess})
            assert result.is_error
            refusals[guess] = text_of(result).replace(guess, "<id>")
        assert len(set(refusals.values())) == 1, refusals  # no oracle: unknown == foreign
        assert next(iter(refusals.values())).startswith("no such sandbox: '<id>'")

        uri = f"sandbox://{theirs}/workspace/secret.txt"
        with pytest.raises(Exception, match="no such sandbox"):
            await bob.read_resource(uri)

        own = await bob.call_tool("execute_bash", {"command": "cat secret.txt"})
        assert own.structured_content["exit_code"] != 0  # bob's default is his own
        listed = await bob.call_tool("list_sandboxes", {})
        ids = {s["sandbox_id"] for s in listed.structured_content["sandboxes"]}
        assert theirs not in ids
        assert chat not in ids

        closing = await bob.call_tool("close_sandbox", {"sandbox_id": theirs})
        assert closing.is_error
        assert "no such sandbox" in text_of(closing)

    async with mcp_client(mcp_env.url, mcp_env.token["alice"]) as alice:
        still = await alice.call_tool("read_file", {"path": "secret.txt", "sandbox_id": theirs})
    assert still.structured_content["content"] == "alice only"


async def test_missing_bad_or_revoked_token_gets_401_and_nothing_runs(mcp_env, docker_client):
    token = mcp_env.tokens.create("mallory-temp", "mallory")
    async with mcp_client(mcp_env.url, token) as client:
        assert (await client.list_tools()).tools  # the token worked before it was revoked
    assert mcp_env.tokens.revoke("mallory-temp")

    attack = tools_call("execute_bash", {"command": "touch /workspace/pwned"})
    async with httpx.AsyncClient(timeout=30) as http:
        for auth, error in (
            (None, "missing_token"),
            ("Basic bWFsbG9yeTpwdw==", "missing_token"),
            ("Bearer mce_not-a-real-token", "invalid_token"),
            (f"Bearer {token}", "invalid_token"),  # revoked
        ):
            headers = dict(ACCEPT, **({"Authorization": auth} if auth else {}))
            for body in (INIT, attack):
                response = await http.post(mcp_env.url, json=body, headers=headers)
                assert response.status_code == 401, (auth, response.text)
                assert response.json()["error"] == error
                assert "mcp-code-executor token" in response.json()["error_description"]
                assert response.headers["www-authenticate"].startswith("Bearer")

    # The official client cannot connect either. (mcp 2.3 reports a 401 as a generic
    # MCPError(-32603, 'Server returned an error response') inside an ExceptionGroup.)
    with pytest.raises(ExceptionGroup) as refused:
        async with mcp_client(mcp_env.url, token) as client:
            await client.list_tools()
    assert refused.group_contains(MCPError)

    assert not [a for a in mcp_env.audit() if a["user"] == "mallory"]
    containers = docker_client.containers.list(
        all=True, filters={"label": f"mcp-code-executor.app={mcp_env.app_label}"}
    )
    assert not [c for c in containers if "mallory" in c.labels.get("mcp-code-executor.user", "")]


async def test_foreign_origin_and_host_are_refused(mcp_env):
    before = len(mcp_env.audit())
    headers = dict(ACCEPT, Authorization=f"Bearer {mcp_env.token['alice']}")
    attack = tools_call("execute_bash", {"command": "echo from-evil"})
    async with httpx.AsyncClient(timeout=30) as http:
        evil = await http.post(
            mcp_env.url, json=attack, headers=dict(headers, Origin="http://evil.example")
        )
        assert evil.status_code == 403
        rebound = await http.post(
            mcp_env.url, json=attack, headers=dict(headers, Host=f"evil.example:{mcp_env.port}")
        )
        assert rebound.status_code == 421
        same = await http.post(
            mcp_env.url,
            json=INIT,
            headers=dict(headers, Origin=f"http://127.0.0.1:{mcp_env.port}"),
        )
        assert same.status_code == 200
    assert not [a for a in mcp_env.audit()[before:] if "from-evil" in a["target"]]


async def test_files_cross_between_a_chat_and_mcp(mcp_env):
    service, executor = mcp_env.service, mcp_env.executor
    chat = await mcp_env.on_server(service.new_session("alice"))
    key = chat_key("alice", chat)
    async with mcp_client(mcp_env.url, mcp_env.token["alice"]) as client:
        wrote = await client.call_tool(
            "write_file", {"path": "from-mcp.txt", "content": "written via MCP", "sandbox_id": chat}
        )
        assert not wrote.is_error, text_of(wrote)
        assert await mcp_env.on_server(executor.read_file(key, "from-mcp.txt")) == "written via MCP"

        payload = bytes(range(256)) * 40
        await mcp_env.on_server(executor.upload_file(key, "/workspace/chat upload.bin", payload))
        got = await client.call_tool(
            "download_file", {"path": "/workspace/chat upload.bin", "sandbox_id": chat}
        )
        links = [c for c in got.content if isinstance(c, ResourceLink)]
        assert links
        assert links[0].size == len(payload)
        read = await client.read_resource(links[0].uri)
        assert base64.b64decode(read.contents[0].blob) == payload

        listed = await client.call_tool("list_sandboxes", {})
        chats = [s for s in listed.structured_content["sandboxes"] if s["sandbox_id"] == chat]
        assert chats
        assert chats[0]["kind"] == "chat"
        assert chats[0]["running"]


async def test_download_gives_text_inline_images_as_images_and_links_for_the_rest(mcp_env):
    png = tiny_png()
    big_text = "".join(f"line {i}\n" for i in range(5000))  # ~44,000 characters
    async with mcp_client(mcp_env.url, mcp_env.token["alice"]) as client:
        up = await client.call_tool(
            "upload_file",
            {"path": "pics/dot.png", "content_base64": base64.b64encode(png).decode()},
        )
        assert not up.is_error, text_of(up)
        await client.call_tool("write_file", {"path": "small.txt", "content": "héllo\n"})
        await client.call_tool("write_file", {"path": "big notes.txt", "content": big_text})
        await client.call_tool(
            "execute_bash", {"command": "head -c 600000 /dev/urandom > huge.bin"}
        )

        small = await client.call_tool("download_file", {"path": "small.txt"})
        assert [c.text for c in small.content] == ["héllo\n"]

        image = await client.call_tool("download_file", {"path": "/workspace/pics/dot.png"})
        images = [c for c in image.content if isinstance(c, ImageContent)]
        assert images
        assert images[0].mime_type == "image/png"
        assert base64.b64decode(images[0].data) == png

        linked = await client.call_tool("download_file", {"path": "big notes.txt"})
        link = next(c for c in linked.content if isinstance(c, ResourceLink))
        assert str(link.uri) == "sandbox://default/workspace/big%20notes.txt"
        read = await client.read_resource(link.uri)
        assert read.contents[0].text == big_text

        huge = await client.call_tool("download_file", {"path": "huge.bin"})
        assert huge.is_error
        assert "more than fits one MCP message" in text_of(huge)

        bad = await client.call_tool("upload_file", {"path": "x", "content_base64": "not base64!"})
        assert bad.is_error
        assert "Hint:" in text_of(bad)
        missing = await client.call_tool("read_file", {"path": "no/such/file.txt"})
        assert missing.is_error
        assert "Hint: Check the path with list_files" in text_of(missing)
        assert "Traceback" not in text_of(missing)


async def test_sandbox_handles_create_close_and_delete(mcp_env):
    async with mcp_client(mcp_env.url, mcp_env.token["alice"], "legacy") as client:
        sandbox = await new_sandbox(client, "scratch")
        ran = await client.call_tool(
            "execute_bash", {"command": "echo kept > f.txt", "sandbox_id": sandbox}
        )
        assert ran.structured_content["exit_code"] == 0

        async def entry() -> dict | None:
            listed = await client.call_tool("list_sandboxes", {})
            found = [
                s for s in listed.structured_content["sandboxes"] if s["sandbox_id"] == sandbox
            ]
            return found[0] if found else None

        assert (await entry())["running"] is True
        assert (await entry())["title"] == "scratch"
        closed = await client.call_tool("close_sandbox", {"sandbox_id": sandbox})
        assert not closed.is_error
        assert (await entry())["running"] is False
        again = await client.call_tool("read_file", {"path": "f.txt", "sandbox_id": sandbox})
        assert again.structured_content["content"] == "kept\n"  # the workspace stayed

        await client.call_tool("close_sandbox", {"sandbox_id": sandbox, "delete_workspace": True})
        assert await entry() is None
        gone = await client.call_tool("execute_bash", {"command": "true", "sandbox_id": sandbox})
        assert gone.is_error
        assert "no such sandbox" in text_of(gone)


async def test_stateful_python_and_the_redirect_without_slash(mcp_env):
    url = mcp_env.url.rstrip("/")  # /mcp answers 307 -> /mcp/; the client follows it
    async with httpx.AsyncClient() as http:
        page = await http.get(f"http://127.0.0.1:{mcp_env.port}/")
        assert page.status_code == 200
        assert "gradio" in page.text.lower()
        redirect = await http.post(url, json=INIT)
        assert redirect.status_code == 307
        assert redirect.headers["location"] == "/mcp/"
    async with mcp_client(url, mcp_env.token["bob"]) as client:
        await client.call_tool("run_python", {"code": "x = 41"})
        result = await client.call_tool("run_python", {"code": "x + 1"})
        assert result.structured_content["stdout"] == "42\n"
        reset = await client.call_tool("reset_python", {})
        assert reset.structured_content["cleared"] is True


@pytest.mark.parametrize("mode", MODES)
async def test_the_apps_agent_reaches_its_chat_with_an_internal_token(mcp_env, mode):
    """How the app's own agent connects (ADK McpToolset): an in-process token for the chat's user
    and the chat's id in a header, so calls without sandbox_id land in the chat's sandbox."""
    service = mcp_env.service
    chat = await mcp_env.on_server(service.new_session("alice"))
    token = mcp_env.tokens.internal_token("alice")
    headers = {"X-Sandbox-Id": chat}
    async with mcp_client(mcp_env.url, token, mode, headers=headers) as agent:
        ran = await agent.call_tool("execute_bash", {"command": f"echo {mode} > agent.txt"})
        assert ran.structured_content["sandbox_id"] == chat
    key = chat_key("alice", chat)
    assert await mcp_env.on_server(mcp_env.executor.read_file(key, "agent.txt")) == f"{mode}\n"
    line = next(a for a in mcp_env.audit() if a["target"] == f"echo {mode} > agent.txt")
    assert (line["user"], line["token"], line["session"]) == ("alice", "agent", chat)

    forged = token[:-4] + ("0000" if not token.endswith("0000") else "1111")
    bob_chat = await mcp_env.on_server(service.new_session("bob"))
    async with httpx.AsyncClient(timeout=30) as http:
        refused = await http.post(
            mcp_env.url, json=INIT, headers=dict(ACCEPT, Authorization=f"Bearer {forged}")
        )
    assert refused.status_code == 401
    async with mcp_client(mcp_env.url, token, mode, headers={"X-Sandbox-Id": bob_chat}) as agent:
        other = await agent.call_tool("execute_bash", {"command": "true"})
    assert other.is_error  # the header picks among the caller's own sandboxes only
    assert "no such sandbox" in text_of(other)


@pytest.mark.parametrize("mode", MODES)
async def test_an_mcp_client_gets_code_mode_in_its_sandboxes(mcp_env, mode):
    """The endpoint as a code-mode gateway: a client's sandbox code calls the app's MCP servers
    (alice's only), and search_tools finds their functions."""
    code = "from tools.mcp import time\ntime.get_current_time(timezone='UTC')['timezone']"
    async with mcp_client(mcp_env.url, mcp_env.token["alice"], mode) as client:
        ran = await client.call_tool("run_python", {"code": code})
        found = await client.call_tool("search_tools", {"query": "current time zone"})
    assert ran.structured_content["stdout"].strip() == "'UTC'", ran.structured_content
    assert ran.structured_content["mcp_calls"][0]["call"] == "time.get_current_time"
    hits = json.dumps(found.structured_content)
    assert "tools.mcp.time" in hits
    assert "get_current_time" in hits
    async with mcp_client(mcp_env.url, mcp_env.token["bob"], mode) as client:
        refused = await client.call_tool("run_python", {"code": code})
        listed = await client.call_tool("search_tools", {"query": "current time zone"})
    assert "has no server module 'time'" in refused.structured_content["stderr"]  # not bob's
    assert "tools.mcp.time" not in json.dumps(listed.structured_content)
