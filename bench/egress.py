"""Egress through the sandbox's proxy against the host doing the same, in one run.

    .venv/bin/python bench/egress.py [--megabytes 100] [--packages 30]

1. Download: a file from a server on the host's loopback, fetched from inside a sandbox (no
   network interface: the runner's proxy carries it over the channel to the host's relay), and
   by the host directly. Throughput; goal >= 0.3x direct.
2. pip: installing N packages from a local PEP 503 index (wheels built here), in a sandbox
   through its proxy, and on the host (`pip install --target`, the host's own pip, its
   configuration switched off). Goal: within 1.5x of the host.

Only loopback is contacted. Saves bench/results/egress.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import publish
from executor import DockerExecutionClient
from tests.egress.support import IndexServer, build_wheel, pip_environment, write_index

QUIET = {"pool_size": 0, "max_executions_per_minute": 0, "max_concurrent_executions": 0}
FETCH = (
    "import os, sys, time, urllib.request\n"
    "opener = urllib.request.build_opener(urllib.request.ProxyHandler("
    "{'http': os.environ['HTTP_PROXY']}))\n"
    "t = time.perf_counter(); n = 0\n"
    "with opener.open(sys.argv[1]) as r:\n"
    "    while chunk := r.read(1 << 20):\n"
    "        n += len(chunk)\n"
    "print(n, time.perf_counter() - t)\n"
)


def host_fetch(url: str) -> tuple[int, float]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    started, size = time.perf_counter(), 0
    with opener.open(url) as response:
        while chunk := response.read(1 << 20):
            size += len(chunk)
    return size, time.perf_counter() - started


class FileServer:
    """`python -m http.server` on the host's loopback, in a process of its own (as a real peer
    would be), serving `root`."""

    def __init__(self, root: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._process = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1",
             "--directory", str(root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        raise RuntimeError("the file server did not start")

    def __enter__(self) -> FileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


def channel_ceiling(engine: Any, container: str, size: int) -> float:
    """Seconds to push `size` bytes into `cat > /dev/null` over one exec's stdin: what the
    transport itself carries, the ceiling of anything tunnelled through it (host -> sandbox)."""
    channel = engine.open_exec(container, ["bash", "-c", "cat > /dev/null; echo done"], stdin=True)
    try:
        data = memoryview(bytes(size))
        started = time.perf_counter()
        while data:
            readable, writable = channel.wait(1, write=True)
            if readable:
                channel.read()
            if writable:
                data = data[channel.send(data[: 1 << 20]) :]
        channel.close_stdin()
        seen = b""
        while b"done" not in seen:
            channel.wait(5)
            events = channel.read()
            if events is None:
                break
            seen += b"".join(chunk for _, chunk in events)
        return time.perf_counter() - started
    finally:
        channel.close()


def pip_version() -> str:
    found = subprocess.run(
        [sys.executable, "-m", "pip", "--version"], capture_output=True, text=True, check=True
    )
    return found.stdout.split()[1]


def host_pip(index: IndexServer, names: list[str], target: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-cache-dir", "--target",
         str(target), "--index-url", index.index_url, *names],
        check=True, env=pip_environment(),
    )  # fmt: skip
    return time.perf_counter() - started


async def main(megabytes: int, packages: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        site = folder / "site"
        (site / "data").mkdir(parents=True)
        (site / "data" / "big.bin").write_bytes(os.urandom(megabytes << 20))
        wheels = folder / "wheels"
        wheels.mkdir()
        names = [f"benchpkg{i:02d}" for i in range(packages)]
        made = [build_wheel(wheels, n, source=f"VALUE = {i}\n" + "# padding\n" * 2000)
                for i, n in enumerate(names)]  # fmt: skip
        write_index(site, made)
        with IndexServer(site) as server, FileServer(site) as files:
            client = DockerExecutionClient(
                app_label=f"mce-bench-{uuid.uuid4().hex[:6]}",
                egress_allow=f"127.0.0.1:{server.port},127.0.0.1:{files.port}",
                state_dir=folder / "state", audit_log=folder / "audit.jsonl", **QUIET,
            )  # fmt: skip
            try:
                url = f"{files.url}/data/big.bin"  # another process: not this one's GIL
                await client.write_file("bench", "fetch.py", FETCH)
                runs = []
                for _ in range(3):
                    done = await client.run(
                        "bench", f"NO_PROXY= no_proxy= python3 fetch.py {url}", timeout=600
                    )
                    size, seconds = done.stdout.split()
                    assert int(size) == megabytes << 20, done.stderr
                    runs.append(float(seconds))
                sandbox = min(runs)
                container = (await client.sandbox_info("bench")).container_name
                size = megabytes << 20
                ceiling = min(
                    [await asyncio.to_thread(channel_ceiling, client.engine, container, size)
                     for _ in range(3)]
                )  # fmt: skip
                host = min([(await asyncio.to_thread(host_fetch, url))[1] for _ in range(3)])
                command = (
                    'NO_PROXY= no_proxy= pip install --quiet --proxy "$HTTP_PROXY" '
                    f"--index-url {server.index_url} {' '.join(names)}"
                )
                await client.run("bench", "true")  # the container is up before timing
                started = time.perf_counter()
                installed = await client.run(
                    "bench", f"bash -c {shlex.quote(command)}", timeout=600
                )
                pip_sandbox = time.perf_counter() - started
                assert installed.exit_code == 0, installed.stderr
                pip_host = await asyncio.to_thread(host_pip, server, names, folder / "host")
            finally:
                client.cleanup_all(remove_volumes=True)
                await client.aclose()
    mb = megabytes * 1.048576
    host_pip_version = await asyncio.to_thread(pip_version)
    rate_sandbox, rate_host, rate_channel = mb / sandbox, mb / host, mb / ceiling
    return "\n".join(
        [
            "# Egress through the sandbox's proxy",
            "",
            f"{time.strftime('%Y-%m-%d %H:%M')} · {platform.node()} · real Docker, runc · a "
            "server on the host's loopback · best of 3",
            "",
            "| | sandbox (through the proxy) | host directly | ratio |",
            "| --- | ---: | ---: | ---: |",
            f"| {megabytes} MiB download | {rate_sandbox:.0f} MB/s ({sandbox:.2f} s) | "
            f"{rate_host:.0f} MB/s ({host:.2f} s) | {rate_sandbox / rate_host:.2f}x throughput "
            "(goal >= 0.3x) |",
            f"| the exec channel itself (stdin into `cat`) | {rate_channel:.0f} MB/s | | "
            f"the tunnel carries {rate_sandbox / rate_channel:.2f}x of it |",
            f"| pip install of {packages} packages | {pip_sandbox:.2f} s | {pip_host:.2f} s | "
            f"{pip_sandbox / pip_host:.2f}x time (goal <= 1.5x) |",
            "",
            "The sandbox has no network interface: each byte crosses the runner's exec channel in "
            "frames with a 2 MiB credit window per direction, and the host's relay dials the "
            "address it checked. The channel's own row is the ceiling: dockerd and "
            "containerd-shim copy every byte of an exec's stdin, so no tunnel over it can beat "
            "that figure, whatever the host's loopback does directly. pip in the sandbox is "
            f"Debian's 23.0.1; the host's is {host_pip_version}.",
            "",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--packages", type=int, default=30)
    args = parser.parse_args()
    publish(asyncio.run(main(args.megabytes, args.packages)), "egress")
