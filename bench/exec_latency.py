"""Executor latency against the raw docker SDK, measured in one run on the same machine.

Rows are ratios to raw `exec_run` in the same run: `true` (and stateful `run_python`) against
raw `exec_run(["true"])`, `python3 -c` against raw `exec_run(["python3", "-c", ...])`.

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
import tempfile
import time
import uuid
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import pct, publish
from executor import DockerExecutionClient
from executor._hardening import SANDBOX_USER
from executor.engines import ContainerRequest
from executor.engines._docker_hardening import container_kwargs
from settings import ExecutorSettings


def ms(x: float) -> str:
    return f"{x * 1000:.1f}"


def raw_container(client: docker.DockerClient, spec: ExecutorSettings, label: str):
    name = f"{label}-raw-{uuid.uuid4().hex[:8]}"
    labels = {"mcp-code-executor.app": f"{label}-raw"}  # not ours: the executor's sweep skips it
    client.volumes.create(name=f"{name}-ws", labels=labels)
    kwargs = container_kwargs(
        ContainerRequest(name, f"{name}-ws", labels, spec, spec.tools_path, spec.skills_path)
    )
    return client.containers.run(**kwargs)


async def main(runs: int) -> str:
    label = f"mce-bench-{uuid.uuid4().hex[:6]}"
    spec = ExecutorSettings(app_label=label)
    sdk = docker.from_env()
    quiet = {
        "state_dir": Path(tempfile.mkdtemp()),
        "audit_log": Path(tempfile.mkdtemp()) / "a.jsonl",
        "max_executions_per_minute": 0,
        "max_concurrent_executions": 0,
        "max_live_sessions": 0,
    }
    ours = DockerExecutionClient(app_label=label, pool_size=0, **quiet)
    rows: list[tuple[str, str, str, str]] = []
    try:
        # Warm commands, interleaved so drift hits every path alike.
        raw = raw_container(sdk, spec, label)
        plain = DockerExecutionClient(
            app_label=f"{label}-plain", use_runner=False, pool_size=0, **quiet
        )
        workloads = {
            "warm `true`: raw SDK exec_run": lambda: asyncio.to_thread(
                raw.exec_run, ["true"], user=SANDBOX_USER, workdir="/workspace"
            ),
            "warm `true`: execute_bash, plain docker exec path": lambda: plain.run("w", "true"),
            "warm `true`: execute_bash via the runner": lambda: ours.run("w", "true"),
            '`python3 -c "print(1)"`: raw SDK exec_run': lambda: asyncio.to_thread(
                raw.exec_run, ["python3", "-c", "print(1)"], user=SANDBOX_USER
            ),
            '`python3 -c "print(1)"`: execute_bash via the runner': lambda: ours.run(
                "w", 'python3 -c "print(1)"'
            ),
            '`run_python("x + 1")`: stateful, via the runner': lambda: ours.run_python(
                "w", "x + 1"
            ),
        }
        await plain.execute_bash("w", "true")
        await ours.run_python("w", "x = 41")
        samples: dict[str, list[float]] = {name: [] for name in workloads}
        for _ in range(runs):
            for name, call in workloads.items():
                t = time.perf_counter()
                await call()
                samples[name].append(time.perf_counter() - t)
        baselines = {
            "warm": samples["warm `true`: raw SDK exec_run"],
            "py": samples['`python3 -c "print(1)"`: raw SDK exec_run'],
        }
        for name, times in samples.items():
            base = baselines["warm"] if "true" in name or "run_python" in name else baselines["py"]
            rows.append(
                (
                    name,
                    ms(pct(times, 0.5)),
                    ms(pct(times, 0.95)),
                    f"{pct(times, 0.5) / pct(base, 0.5):.2f}x",
                )
            )
        plain.cleanup_all(remove_volumes=True)

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


async def gvisor_rows(runs: int) -> str:
    """runc against runsc (gVisor) on one daemon that has both: the tests' second dockerd."""
    from executor.engines.docker import DockerEngine
    from tests.conftest import _runsc_wrapper
    from tests.support.daemons import SecondDockerd

    runtimes = _runsc_wrapper()
    if not runtimes:
        return "\n## gVisor\n\nrunsc is not installed (`apt-get install runsc`): not measured.\n"
    daemon = SecondDockerd(name="second", runtimes=runtimes).start()
    rows: list[tuple[str, str, str, str]] = []
    try:
        daemon.load_image(ExecutorSettings().image_name)
        sdk = docker.DockerClient(base_url=daemon.unix_host)
        label = f"mce-bench-g-{uuid.uuid4().hex[:6]}"
        quiet = {
            "state_dir": Path(tempfile.mkdtemp()),
            "audit_log": Path(tempfile.mkdtemp()) / "a.jsonl",
            "pool_size": 0,
            "max_executions_per_minute": 0,
            "max_concurrent_executions": 0,
            "max_live_sessions": 0,
        }
        clients = {
            rt: DockerExecutionClient(
                sandbox_engine=DockerEngine(environ={"DOCKER_HOST": daemon.unix_host}),
                app_label=f"{label}-{rt}",
                runtime="" if rt == "runc" else rt,
                **quiet,
            )
            for rt in ("runc", "runsc")
        }
        raws = {
            rt: raw_container(sdk, ExecutorSettings(runtime="" if rt == "runc" else rt), label)
            for rt in ("runc", "runsc")
        }
        workloads = {}
        for rt in ("runc", "runsc"):
            workloads[f"warm `true`: raw SDK exec_run, {rt}"] = lambda rt=rt: asyncio.to_thread(
                raws[rt].exec_run, ["true"], user=SANDBOX_USER
            )
            workloads[f"warm `true`: execute_bash via the runner, {rt}"] = lambda rt=rt: clients[
                rt
            ].run("w", "true")
        for client in clients.values():
            await client.run("w", "true")
        samples: dict[str, list[float]] = {name: [] for name in workloads}
        for _ in range(runs):
            for name, call in workloads.items():
                t = time.perf_counter()
                await call()
                samples[name].append(time.perf_counter() - t)
        base = pct(samples["warm `true`: raw SDK exec_run, runc"], 0.5)
        for name, times in samples.items():
            rows.append(
                (name, ms(pct(times, 0.5)), ms(pct(times, 0.95)), f"{pct(times, 0.5) / base:.2f}x")
            )
        for rt, client in clients.items():
            first = []
            for i in range(max(3, runs // 10)):
                t = time.perf_counter()
                await client.execute_bash(f"first-{i}", "true")
                first.append(time.perf_counter() - t)
            rows.append(
                (f"first call of a new session (no pool), {rt}", ms(pct(first, 0.5)),
                 ms(pct(first, 0.95)), "")
            )  # fmt: skip
        for client in clients.values():
            client.cleanup_all(remove_volumes=True)
        for c in raws.values():
            c.remove(force=True)
    finally:
        daemon.stop()
    return "\n".join(
        [
            "",
            "## gVisor (runsc) against runc, on one daemon",
            "",
            "| workload | p50 ms | p95 ms | vs raw runc exec_run |",
            "| --- | ---: | ---: | ---: |",
            *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
            "",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument(
        "--gvisor", action="store_true", help="also compare runsc and runc (a second dockerd)"
    )
    args = parser.parse_args()
    report = asyncio.run(main(args.runs))
    if args.gvisor:
        report += asyncio.run(gvisor_rows(args.runs))
    publish(report, "exec_latency")
