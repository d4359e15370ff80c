"""The executor against a second Docker daemon: over TCP with TLS (a remote host), over a
forwarded unix socket (what `ssh -L` gives), and while that daemon goes away and comes back."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time

import pytest

from executor import DockerExecutionClient, ExecutionResult, OutputChunk, SandboxUnavailableError
from executor.engines.docker import DockerEngine
from tests.conftest import NO_EXTRAS
from tests.support.daemons import host_bridges

pytestmark = [pytest.mark.docker, pytest.mark.remote]


async def test_commands_run_through_the_runner_over_tls(tls_executor):
    result = await tls_executor.run("u1", "echo out; echo err >&2; exit 3")
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert result.runner  # the runner was not declared dead over TLS
    for _ in range(20):  # many small requests: each answer may sit decrypted in the TLS buffer
        assert (await tls_executor.execute_bash("u1", "echo ping"))[:2] == (0, "ping\n")


async def test_python_state_and_live_output_over_tls(tls_executor):
    await tls_executor.run_python("u2", "import os\nkept = 6 * 7")
    assert (await tls_executor.run_python("u2", "kept")).stdout == "42\n"
    seen = []
    async for item in tls_executor.stream_bash("u2", "echo first; sleep 1; echo second"):
        seen.append(item)
    assert isinstance(seen[0], OutputChunk)
    assert seen[0].text == "first\n"
    assert isinstance(seen[-1], ExecutionResult)


@pytest.mark.parametrize("size", [0, 1, 5_000_000])
async def test_uploads_and_downloads_are_byte_exact_over_tls(tls_executor, size, tmp_path):
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    started = time.monotonic()
    await tls_executor.upload_file("u3", f"blob-{size}.bin", payload)
    assert await tls_executor.download_file("u3", f"blob-{size}.bin") == payload
    dest = tmp_path / "copy.bin"
    assert await tls_executor.download_to("u3", f"blob-{size}.bin", dest) == size
    assert dest.read_bytes() == payload
    assert time.monotonic() - started < 30  # uploads used to hang for 60 s over TLS


async def test_timeouts_kill_the_whole_tree_over_tls(tls_executor):
    result = await tls_executor.run("u4", "sleep 300 & sleep 301; echo never", timeout=1)
    assert (result.exit_code, result.timed_out) == (124, True)
    assert (await tls_executor.execute_bash("u4", "pgrep -c -u 1000 -x sleep || true"))[
        1
    ].strip() == "0"


async def test_a_flood_is_capped_over_tls(tls_executor):
    result = await tls_executor.run("u5", "yes | head -c 5000000")
    assert result.stdout_dropped_bytes > 0
    assert len(result.stdout.encode()) < 1_200_000


async def test_the_plain_exec_path_uploads_without_half_close_over_tls(second_dockerd, tmp_path):
    """Without the runner, an upload is a plain exec whose stdin cannot be half-closed over TLS:
    the helper reads exactly the announced size."""
    client = DockerExecutionClient(
        sandbox_engine=DockerEngine(environ=second_dockerd.tls_environ()),
        app_label="mce-test-tls-plain",
        use_runner=False,
        state_dir=tmp_path,
        audit_log=tmp_path / "audit.jsonl",
        **NO_EXTRAS,
    )
    try:
        payload = b"y" * 3_000_000
        await client.upload_file("plain", "big.bin", payload)
        assert await client.download_file("plain", "big.bin") == payload
        result = await client.run("plain", "sha256sum big.bin | cut -c1-8")
        assert not result.runner
        assert result.exit_code == 0
    finally:
        client.cleanup_all(remove_volumes=True)
        await client.aclose(remove_containers=False)


@contextlib.contextmanager
def forwarded_socket(target: str, path: str):
    """What `ssh -NL path:target` provides: a unix socket whose connections are piped to
    `target`, end of input included."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(64)
    stop = threading.Event()

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(target)
            threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"unix://{path}"
    finally:
        stop.set()
        listener.close()


async def test_a_forwarded_unix_socket_works(second_dockerd, tmp_path):
    with forwarded_socket(str(second_dockerd.socket_path), str(tmp_path / "fwd.sock")) as host:
        client = DockerExecutionClient(
            sandbox_engine=DockerEngine(environ={"DOCKER_HOST": host}),
            app_label="mce-test-forwarded",
            state_dir=tmp_path,
            audit_log=tmp_path / "audit.jsonl",
            **NO_EXTRAS,
        )
        try:
            result = await client.run("fwd", "echo through the tunnel")
            assert (result.stdout, result.runner) == ("through the tunnel\n", True)
            await client.upload_file("fwd", "f.txt", b"abc" * 100_000)
            assert await client.read_file("fwd", "f.txt", line_count=1) == "abc" * 100_000
        finally:
            client.cleanup_all(remove_volumes=True)
            await client.aclose(remove_containers=False)


async def test_while_the_daemon_is_down_every_call_fails_fast_and_then_recovers(
    second_dockerd, tmp_path
):
    """Stop the daemon under a live session: each public method answers within a second with
    the executor's own error; once the daemon is back the session works and its files are there."""
    client = DockerExecutionClient(
        sandbox_engine=DockerEngine(environ={"DOCKER_HOST": second_dockerd.unix_host}),
        app_label="mce-test-daemon-down",
        state_dir=tmp_path,
        audit_log=tmp_path / "audit.jsonl",
        **NO_EXTRAS,
    )
    calls = {
        "execute_bash": lambda: client.execute_bash("s", "echo hi"),
        "run_python": lambda: client.run_python("s", "1 + 1"),
        "reset_python": lambda: client.reset_python("s"),
        "read_file": lambda: client.read_file("s", "keep.txt"),
        "write_file": lambda: client.write_file("s", "other.txt", "x"),
        "download_file": lambda: client.download_file("s", "keep.txt"),
        "download_to": lambda: client.download_to("s", "keep.txt", tmp_path / "d.bin"),
        "zip_workspace_to": lambda: client.zip_workspace_to("s", tmp_path / "w.zip"),
        "list_files": lambda: client.list_files("s"),
        "stop": lambda: client.stop("s"),
        "delete_session": lambda: client.delete_session("other"),
        "inventory": lambda: client.inventory(),
        "new session": lambda: client.execute_bash("brand-new", "true"),
    }
    try:
        await client.write_file("s", "keep.txt", "survives")
        await client.run_python("s", "x = 1")
        second_dockerd.stop()
        for name, call in calls.items():
            started = time.monotonic()
            with pytest.raises(SandboxUnavailableError, match="Is Docker running"):
                await call()
            assert time.monotonic() - started < 1.0, name
        second_dockerd.start()
        await asyncio.sleep(0)
        code, out, _ = await client.execute_bash("s", "cat keep.txt")
        assert (code, out) == (0, "survives")
        assert await client.read_file("s", "keep.txt") == "survives"
    finally:
        if second_dockerd.process is None:
            second_dockerd.start()
        client.cleanup_all(remove_volumes=True)
        await client.aclose(remove_containers=False)


def test_the_second_daemon_leaves_the_hosts_bridges_alone(second_dockerd):
    """A dockerd started with `--bridge none` deletes the host's docker0 (the main daemon's):
    ours brings a bridge of its own, and the host's bridges outlive its restarts."""
    second_dockerd.stop()
    second_dockerd.start()
    assert second_dockerd.host_bridges is not None
    missing = second_dockerd.host_bridges - host_bridges() - {second_dockerd.bridge}
    assert not missing, f"the second dockerd removed the host's {sorted(missing)}"
