"""What MCP adds to a command: warm `execute_bash("true")` through the MCP endpoint (HTTP, the
official `mcp` client, both protocol revisions) against the direct executor call, in one run.

    .venv/bin/python bench/mcp_overhead.py [--runs 200]

The MCP server runs as its own process (as in the app: the client is another program), built
exactly as the app builds it (FastAPI, MCP mounted at /mcp, bearer token, Host/Origin checks),
with its own executor; the direct calls use a second executor in this process. Calls are
interleaved so drift hits every path alike. Prints a markdown table and saves it to
bench/results/mcp_overhead.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import pct, publish

QUIET = {
    "pool_size": 0,
    "max_executions_per_minute": 0,
    "max_concurrent_executions": 0,
    "max_live_sessions": 0,
}


def ms(x: float) -> str:
    return f"{x * 1000:.1f}"


def serve(port: int, label: str, data: Path) -> None:
    """The child process: the MCP endpoint on 127.0.0.1:port; prints its token first."""
    import uvicorn
    from fastapi import FastAPI

    from executor import DockerExecutionClient
    from mcp_server import (
        Sandboxes,
        SandboxStore,
        TokenStore,
        build_http_app,
        build_mcp,
        mount_mcp,
    )

    executor = DockerExecutionClient(
        app_label=label, state_dir=data, audit_log=data / "audit.jsonl", **QUIET
    )
    tokens = TokenStore(data / "mcp.db")
    print(tokens.create("bench", "bench"), flush=True)
    sandboxes = Sandboxes(SandboxStore(data / "mcp.db"), executor)
    app = FastAPI()
    mount_mcp(app, build_http_app(build_mcp(executor, tokens, sandboxes), host="127.0.0.1"))
    try:
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
    finally:
        executor.cleanup_all(remove_volumes=True)


async def main(runs: int) -> str:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    from executor import DockerExecutionClient

    label = f"mce-bench-{uuid.uuid4().hex[:6]}"
    data = Path(tempfile.mkdtemp())
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve",
        str(port),
        f"{label}-mcp",
        str(data),
        stdout=subprocess.PIPE,
    )
    direct = DockerExecutionClient(
        app_label=f"{label}-direct", state_dir=data, audit_log=data / "direct.jsonl", **QUIET
    )
    try:
        token = (await child.stdout.readline()).decode().strip()
        url = f"http://127.0.0.1:{port}/mcp/"
        async with httpx.AsyncClient() as http:
            for _ in range(200):
                try:
                    await http.get(url)
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        headers = {"Authorization": f"Bearer {token}"}
        legacy = Client(
            streamable_http_client(url, http_client=create_mcp_http_client(headers=headers)),
            mode="legacy",
        )
        modern = Client(
            streamable_http_client(url, http_client=create_mcp_http_client(headers=headers)),
            mode="auto",
        )
        async with legacy, modern:
            versions = {legacy.protocol_version, modern.protocol_version}
            assert versions == {"2025-11-25", "2026-07-28"}, versions

            async def through(client) -> None:
                result = await client.call_tool("execute_bash", {"command": "true"})
                assert result.structured_content["exit_code"] == 0

            workloads = {
                "direct `executor.run(key, 'true')`": lambda: direct.run("bench", "true"),
                "MCP `execute_bash('true')`, 2025-11-25 (session)": lambda: through(legacy),
                "MCP `execute_bash('true')`, 2026-07-28 (stateless)": lambda: through(modern),
                "MCP `list_sandboxes()`, 2026-07-28: runs no command (protocol floor)": (
                    lambda: modern.call_tool("list_sandboxes", {})
                ),
            }
            for call in workloads.values():  # warm: containers, runners, connections
                for _ in range(5):
                    await call()
            samples: dict[str, list[float]] = {name: [] for name in workloads}
            for _ in range(runs):
                for name, call in workloads.items():
                    t = time.perf_counter()
                    await call()
                    samples[name].append(time.perf_counter() - t)
    finally:
        child.send_signal(signal.SIGINT)  # uvicorn re-raises SIGTERM, skipping the cleanup
        await asyncio.wait_for(child.wait(), 60)
        direct.cleanup_all(remove_volumes=True)

    base = samples["direct `executor.run(key, 'true')`"]
    rows = []
    for name, times in samples.items():
        extra = pct(times, 0.5) - pct(base, 0.5)
        rows.append(
            (name, ms(pct(times, 0.5)), ms(pct(times, 0.95)), "-" if times is base else ms(extra))
        )
    lines = [
        "# MCP overhead",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')} · {platform.machine()} · {os.cpu_count()} cores · "
        f"{runs} warm runs each, interleaved · server in its own process, loopback HTTP, "
        "official `mcp` client · target: at most +5 ms p50",
        "",
        "| workload | p50 ms | p95 ms | p50 over direct, ms |",
        "| --- | ---: | ---: | ---: |",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument(
        "--serve", nargs=3, metavar=("PORT", "LABEL", "DATA"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1], Path(args.serve[2]))
    else:
        publish(asyncio.run(main(args.runs)), "mcp_overhead")
