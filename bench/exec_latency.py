"""Executor latency against the raw docker SDK, measured in one run on the same machine.

    .venv/bin/python bench/exec_latency.py [--runs 50]

Rows: warm `execute_bash("true")` vs raw `exec_run(["true"])` on a container made with the same
hardening; first call of a new session vs raw `containers.run` + `exec_run`; 20 new sessions at
once. Prints a markdown table and saves it to bench/results/exec_latency.md.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import time
import uuid
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import pct, publish
from executor import DockerExecutionClient
from executor._hardening import SANDBOX_USER, container_kwargs
from settings import ExecutorSettings


def ms(x: float) -> str:
    return f"{x * 1000:.1f}"


def raw_container(client: docker.DockerClient, spec: ExecutorSettings, label: str):
    name = f"{label}-raw-{uuid.uuid4().hex[:8]}"
    labels = {"mcp-code-executor.app": f"{label}-raw"}  # not ours: the executor's sweep skips it
    client.volumes.create(name=f"{name}-ws", labels=labels)
    kwargs = container_kwargs(
        spec,
        name=name,
        volume=f"{name}-ws",
        labels=labels,
        tools_path=spec.tools_path,
        skills_path=spec.skills_path,
    )
    return client.containers.run(**kwargs)


async def main(runs: int) -> str:
    label = f"mce-bench-{uuid.uuid4().hex[:6]}"
    spec = ExecutorSettings(app_label=label)
    sdk = docker.from_env()
    ours = DockerExecutionClient(app_label=label)
    rows: list[tuple[str, str, str, str]] = []
    try:
        # Warm exec.
        raw = raw_container(sdk, spec, label)
        raw.exec_run(["true"], user=SANDBOX_USER)
        await ours.execute_bash("bench-warm", "true")
        raw_t, our_t = [], []
        for _ in range(runs):  # interleaved, so drift hits both alike
            t = time.perf_counter()
            raw.exec_run(["true"], user=SANDBOX_USER, workdir="/workspace")
            raw_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            result = await ours.run("bench-warm", "true")
            our_t.append(time.perf_counter() - t)
            assert result.exit_code == 0
        rows.append(
            ("warm `true`: raw SDK exec_run", ms(pct(raw_t, 0.5)), ms(pct(raw_t, 0.95)), "1.00x")
        )
        rows.append(
            (
                "warm `true`: execute_bash",
                ms(pct(our_t, 0.5)),
                ms(pct(our_t, 0.95)),
                f"{pct(our_t, 0.5) / pct(raw_t, 0.5):.2f}x",
            )
        )

        # First call of a new session.
        n_first = max(5, runs // 5)
        raw_first, our_first = [], []
        for i in range(n_first):
            t = time.perf_counter()
            c = raw_container(sdk, spec, label)
            c.exec_run(["true"], user=SANDBOX_USER)
            raw_first.append(time.perf_counter() - t)
            t = time.perf_counter()
            await ours.execute_bash(f"bench-first-{i}", "true")
            our_first.append(time.perf_counter() - t)
        rows.append(
            (
                "first call: raw containers.run + exec_run",
                ms(pct(raw_first, 0.5)),
                ms(pct(raw_first, 0.95)),
                "1.00x",
            )
        )
        rows.append(
            (
                "first call: execute_bash on a new session",
                ms(pct(our_first, 0.5)),
                ms(pct(our_first, 0.95)),
                f"{pct(our_first, 0.5) / pct(raw_first, 0.5):.2f}x",
            )
        )

        # 20 new sessions at once, then the same 20 warm.
        async def timed(uid: str) -> float | None:
            t = time.perf_counter()
            try:
                code, _, _ = await ours.execute_bash(uid, "true")
            except Exception:  # noqa: BLE001 - a benchmark counts failures instead of stopping
                return None
            return time.perf_counter() - t if code == 0 else None

        for kind in ("new", "warm"):
            results = await asyncio.gather(*(timed(f"bench-par-{i}") for i in range(20)))
            ok = [r for r in results if r is not None]
            errors = len(results) - len(ok)
            rows.append(
                (
                    f"20 sessions at once ({kind}), per call",
                    ms(pct(ok, 0.5)),
                    ms(pct(ok, 0.95)),
                    f"errors: {errors}",
                )
            )
    finally:
        ours.cleanup_all(remove_volumes=True)
        raw_label = {"label": f"mcp-code-executor.app={label}-raw"}
        for c in sdk.containers.list(all=True, filters=raw_label):
            c.remove(force=True)
        for v in sdk.volumes.list(filters=raw_label):
            v.remove(force=True)

    info = sdk.version()
    lines = [
        "# Executor latency",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')} · Docker {info['Version']} · {platform.machine()} · "
        f"{__import__('os').cpu_count()} cores · {runs} warm runs each, interleaved",
        "",
        "| workload | p50 ms | p95 ms | vs baseline |",
        "| --- | ---: | ---: | ---: |",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    publish(asyncio.run(main(parser.parse_args().runs)), "exec_latency")
