"""Crowds: many new sessions at once, against bare Docker and peer sandboxes in one run.

    .venv/bin/python bench/crowd.py [--sizes 30,50] [--gap 60] [--users 20,50,100]

For each crowd size n (default 30 and 50), every system gets n new sessions at once, each
running its first command; the systems take turns, so drift hits them alike:
- bare Docker (the baseline): `containers.run` + `exec_run`, same hardening and image;
- this executor with its defaults (warm pool floor 2, loop quota where possible), first with a
  pool that has never seen a crowd ("cold"), then `--gap` seconds later a second crowd of n,
  which the pool has learned to expect ("after a crowd");
- google-adk's ContainerCodeExecutor and llm-sandbox (skipped when not installed).
Also: `true` latency of an existing session while a crowd arrives and while the pool refills
(against the same session when quiet); host memory of the pool at rest; the first `run_python`
of a new session (pool ready); and whole chat turns through ChatService (offline model, fresh
data directory) with 20, 50 and 100 people opening a chat at once and sending four commands.
Ratios are to the baseline measured in the same run. Saves bench/results/crowd.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import platform
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import pct, publish
from bench.compare import IMAGE, LABEL, AdkContainer, LlmSandbox, Ours, Raw, crowd_run, remove_peers
from executor.pool import POOL_LABEL


def summary(times: list[float], errors: int, base: list[float] | None = None) -> str:
    if not times:
        return f"all {errors} failed"
    text = f"p50 {pct(times, 0.5):.2f} s, p95 {pct(times, 0.95):.2f} s"
    if base:
        text += f" (**{pct(times, 0.5) / pct(base, 0.5):.2f}x**)"
    return text + (f", {errors} errors" if errors else ", 0 errors")


class Prober:
    """Runs `true` in one existing session every 20 ms in the background and keeps the times,
    so a crowd's effect on people already working shows."""

    def __init__(self, ours: Ours, key: str) -> None:
        self.ours, self.key = ours, key
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            self.ours.true(self.key)
            self.samples.append(time.perf_counter() - started)
            self._stop.wait(0.02)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def refill_wait(ours: Ours, at_least_s: float) -> float:
    """Wait until the pool is full again and at least `at_least_s` passed; return how long
    refilling took."""
    started = time.monotonic()
    deadline = started + 300
    full_at = None
    while time.monotonic() < deadline:
        status = ours.client.pool_status()
        if full_at is None and status.ready >= status.target:
            full_at = time.monotonic()
        if full_at is not None and time.monotonic() - started >= at_least_s:
            break
        time.sleep(0.1)
    return (full_at or time.monotonic()) - started


def pool_memory(client: docker.DockerClient, ours: Ours) -> tuple[int, int]:
    """(members, bytes) of the unclaimed pool members at rest (read in parallel: one member at a
    time would outlast the pool's demand window)."""
    label = ours.client.settings.app_label
    members = [
        c
        for c in client.containers.list(
            filters={"label": [f"mcp-code-executor.app={label}", f"{POOL_LABEL}=1"]},
            ignore_removed=True,
        )
        if c.name not in ours.claimed
    ]

    def used(container_id: str) -> int | None:
        try:
            stats = client.api.stats(container_id, stream=False, one_shot=True)["memory_stats"]
        except docker.errors.NotFound:
            return None
        extra = stats.get("stats", {})
        cache = extra.get("total_inactive_file", extra.get("inactive_file", 0))
        return stats.get("usage", 0) - cache

    with ThreadPoolExecutor(max_workers=16) as pool:
        sizes = [size for size in pool.map(used, [c.id for c in members]) if size is not None]
    return len(sizes), sum(sizes)


def first_python(ours: Ours, trials: int) -> list[float]:
    times = []
    for _ in range(trials):
        ours.wait_for_pool()
        key = ours.new()
        started = time.perf_counter()
        result = ours.call(ours.client.run_python(key, "print(1)"))
        times.append(time.perf_counter() - started)
        assert result.stdout == "1\n", result
        ours.close(key)
    return times


async def chat_crowd(people: int, turns: int = 4) -> tuple[list[float], list[float], int]:
    """(first-turn times, later-turn times, errors) of `people` opening a chat at once."""
    from agent.events import ErrorEvent, TurnDone
    from agent.service import ChatService
    from executor import DockerExecutionClient
    from settings import load_settings

    data = Path(tempfile.mkdtemp(prefix="mce-crowd-"))
    settings = load_settings({})
    executor = DockerExecutionClient.from_settings(
        dataclasses.replace(
            settings.executor,
            app_label=f"{LABEL}-chat{people}",
            state_dir=data / "executor",
            audit_log=data / "audit.jsonl",
        )
    )
    service = ChatService(
        dataclasses.replace(settings, data_dir=data), executor=executor, model="offline"
    )
    first: list[float] = []
    later: list[float] = []
    errors = 0

    async def person(n: int) -> None:
        nonlocal errors
        try:
            session = await service.new_session(f"bench-{n}")
        except Exception:  # noqa: BLE001 - a benchmark counts failures instead of stopping
            errors += turns
            return
        for turn in range(turns):
            started = time.perf_counter()
            failed = False
            try:
                async for event in service.stream(f"bench-{n}", session, f"$ echo {n}-{turn}"):
                    failed |= isinstance(event, ErrorEvent)
                    if isinstance(event, TurnDone):
                        break
            except Exception:  # noqa: BLE001
                failed = True
            if failed:
                errors += 1
            else:
                (later if turn else first).append(time.perf_counter() - started)

    await executor.start()
    try:
        await asyncio.gather(*(person(n) for n in range(people)))
    finally:
        await service.close(executor=False)
        executor.cleanup_all(remove_volumes=True)
        await executor.aclose()
    return first, later, errors


def main(sizes: list[int], gap_s: float, users: list[int], at_rest_s: float = 10.0) -> str:
    client = docker.from_env(timeout=300)
    raw = Raw(client)
    peers: list[Any] = [AdkContainer()]
    try:
        peers.append(LlmSandbox())
    except ImportError:
        print("llm-sandbox is not installed (pip install -e '.[bench]'); its column is skipped")
    lines = [
        "# Crowds",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')} · Docker {client.version()['Version']} · "
        f"{platform.machine()} · {os.cpu_count()} cores · image {IMAGE} for every system · "
        "times are from a session's creation to its first command's end; **ratios** are p50 "
        "against bare Docker's two crowds of the same size (before and after ours), measured in "
        "the same run; our app is at rest before its first crowd (started 10 s earlier)",
        "",
        "| new sessions at once | bare Docker (run + exec_run) | this executor, cold pool "
        "| this executor, a crowd later | " + " | ".join(p.name for p in peers) + " |",
        "| --- | ---: | ---: | ---: |" + " ---: |" * len(peers),
    ]
    probe_lines: list[str] = []
    memory_line = ""
    refill_line = ""
    checks: list[tuple[str, float, float]] = []
    python_times: list[float] = []
    made: list[Ours] = []
    try:
        for n in sizes:
            ours = Ours(2, name="this executor", pool_check_interval_s=1.0)
            made.append(ours)
            ours.wait_for_pool()
            time.sleep(at_rest_s)  # an app up for a while: its spare workspaces are formatted
            worker = ours.new()
            ours.true(worker)
            ours.claimed = {ours.container_id(worker)}  # type: ignore[attr-defined]
            quiet = [timed_true(ours, worker) for _ in range(50)]
            print(f"{n} at once: bare Docker ...", flush=True)
            raw_cold = crowd_run(raw, n)
            print(f"{n} at once: this executor, cold pool ...", flush=True)
            with Prober(ours, worker) as during_crowd:
                cold = crowd_run(ours, n)
            with Prober(ours, worker) as during_refill:
                refill_s = refill_wait(ours, 0)
            refill_wait(ours, max(0.0, gap_s - refill_s))
            members, held = pool_memory(client, ours)
            print(f"{n} at once: bare Docker again ...", flush=True)
            raw_again = crowd_run(raw, n)
            base = (raw_cold[0] + raw_again[0], raw_cold[1] + raw_again[1])
            print(f"{n} at once: this executor, a crowd later ...", flush=True)
            again = crowd_run(ours, n)
            peer_results = []
            for peer in peers:
                print(f"{n} at once: {peer.name} ...", flush=True)
                peer_results.append(crowd_run(peer, n))
            if n == sizes[0]:
                python_times = first_python(ours, 20)
            ours.close(worker)
            ours.shutdown()
            made.remove(ours)
            lines.append(
                f"| {n} | {summary(*raw_cold)}; again {summary(*raw_again)} "
                f"| {summary(*cold, base[0])} | {summary(*again, base[0])} | "
                + " | ".join(summary(*r, base[0]) for r in peer_results)
                + " |"
            )
            probe_lines.append(
                f"| {n} | {pct(quiet, 0.5) * 1000:.1f} ms "
                f"| {pct(during_crowd.samples, 0.5) * 1000:.1f} ms "
                f"(p95 {pct(during_crowd.samples, 0.95) * 1000:.0f} ms) "
                f"| {pct(during_refill.samples, 0.5) * 1000:.1f} ms "
                f"(p95 {pct(during_refill.samples, 0.95) * 1000:.0f} ms) |"
            )
            if n == sizes[0]:
                memory_line = (
                    f"Pool at rest after a crowd of {n}: {members} members holding "
                    f"{held / 2**20:.0f} MiB of host memory ({held / max(1, members) / 2**20:.1f} "
                    "MiB each, page cache excluded)."
                )
                refill_line = f"Refilling after the crowd of {n} took {refill_s:.1f} s."
            checks += [
                (f"{n} at once, cold pool: p50 vs bare Docker", ratio(cold, base), 1.0),
                (f"{n} at once, a crowd later: p50 vs bare Docker", ratio(again, base), 0.3),
            ]
            checks += [(f"{n} at once: errors", cold[1] + again[1], 0)]
    finally:
        for ours in made:
            ours.shutdown()
        remove_peers(client)
    lines += [
        "",
        "`true` in a session already working, while the crowd arrives and while the pool refills:",
        "",
        "| crowd | quiet p50 | during the crowd | during the refill |",
        "| --- | ---: | ---: | ---: |",
        *probe_lines,
        "",
        memory_line,
        refill_line,
    ]
    if python_times:
        lines += [
            "",
            f"First `run_python` of a new session (pool ready, 20 sessions): p50 "
            f"{pct(python_times, 0.5) * 1000:.1f} ms, p95 {pct(python_times, 0.95) * 1000:.1f} ms.",
        ]
        checks.append(("first run_python p50 (ms)", pct(python_times, 0.5) * 1000, 10.0))
    if users:
        lines += [
            "",
            "Chat turns through ChatService (offline model, fresh data directory): n people open "
            "a new chat at once and send four `$ echo` commands each:",
            "",
            "| people | first turn (container start) | later turns | errors |",
            "| ---: | ---: | ---: | ---: |",
        ]
        for people in users:
            print(f"ChatService: {people} people ...", flush=True)
            first, later, errors = asyncio.run(chat_crowd(people))
            lines.append(
                f"| {people} | p50 {pct(first, 0.5):.2f} s, p95 {pct(first, 0.95):.2f} s "
                f"| p50 {pct(later, 0.5) * 1000:.0f} ms, p95 {pct(later, 0.95) * 1000:.0f} ms "
                f"| {errors} |"
            )
            checks.append((f"ChatService, {people} people: errors", errors, 0))
    lines += ["", "Targets:", ""]
    lines += [
        f"- {what}: {value:.2f} (target <= {limit}) {'OK' if value <= limit else 'MISSED'}"
        for what, value, limit in checks
    ]
    return "\n".join(lines) + "\n"


def timed_true(ours: Ours, key: str) -> float:
    started = time.perf_counter()
    ours.true(key)
    return time.perf_counter() - started


def ratio(ours: tuple[list[float], int], base: tuple[list[float], int]) -> float:
    if not ours[0] or not base[0]:
        return 99.0
    return pct(ours[0], 0.5) / pct(base[0], 0.5)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="30,50")
    parser.add_argument("--gap", type=float, default=60.0, help="seconds between the crowds")
    parser.add_argument("--users", default="20,50,100", help="ChatService crowds; '' to skip")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        publish(
            main(
                [int(n) for n in args.sizes.split(",")],
                args.gap,
                [int(n) for n in args.users.split(",") if n],
            ),
            "crowd",
        )
