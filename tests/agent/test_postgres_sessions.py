"""Chats in Postgres (APP_SESSION_DB_URL), as app replicas share them: a real PostgreSQL
cluster started by the test in a temp directory on a loopback port, stopped by its pid."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from agent.events import ErrorEvent, ToolCallFinished, UserMessage
from agent.service import ChatService
from settings import load_settings
from tests.conftest import IN_CI

pytestmark = [pytest.mark.docker, pytest.mark.postgres]


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: when we are root, run it as the `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    bin_dir = _binaries()
    if bin_dir is None:
        message = "PostgreSQL is not installed (apt-get install postgresql)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="mce-test-postgres-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    subprocess.run(
        _as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]),
        check=True,
        capture_output=True,
    )
    port = _free_port()
    server = subprocess.Popen(
        _as_postgres(
            [
                str(bin_dir / "postgres"),
                "-D", str(data),
                "-p", str(port),
                "-k", str(root),
                "-c", "listen_addresses=127.0.0.1",
                "-c", "fsync=off",
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            ready = subprocess.run(
                [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                break
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start: {server.stderr.read().decode()}")
            time.sleep(0.2)
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
    finally:
        _stop(server, data)
        shutil.rmtree(root, ignore_errors=True)


def _stop(server: subprocess.Popen, data: Path) -> None:
    """Stop the cluster by its postmaster's pid (runuser does not pass signals on); SIGINT is
    PostgreSQL's fast shutdown."""
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pid = server.pid
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(timeout=5)


@pytest.fixture
async def replicas(postgres_url, executor, tmp_path):
    """Two ChatServices (as two app replicas would be) on one Postgres database."""
    made = []
    for name in ("a", "b"):
        settings = dataclasses.replace(
            load_settings({}), data_dir=tmp_path / name, session_db_url=postgres_url
        )
        made.append(ChatService(settings, executor=executor, model="offline"))
    yield made
    for service in made:
        await service.close(executor=False)


async def turn(service: ChatService, user: str, session: str, text: str) -> list:
    events = [event async for event in service.stream(user, session, text)]
    assert not [e for e in events if isinstance(e, ErrorEvent)], events
    return [e.response["stdout"] for e in events if isinstance(e, ToolCallFinished)]


async def test_a_chat_made_on_one_replica_continues_on_the_other(replicas, user_id):
    first, second = replicas
    session = await first.new_session(user_id)
    assert await turn(first, user_id, session, "$ echo kept > k.txt && echo written") == [
        "written\n"
    ]

    [listed] = await second.list_sessions(user_id)
    assert listed.session_id == session
    history = await second.history(user_id, session)
    assert history[0] == UserMessage("$ echo kept > k.txt && echo written")
    assert await turn(second, user_id, session, "$ cat k.txt") == ["kept\n"]
    assert len(await first.history(user_id, session)) > len(history)  # and back again


async def test_a_crowd_of_new_chats_on_postgres_all_succeed(replicas):
    first, second = replicas

    async def person(n: int) -> list[str]:
        service = (first, second)[n % 2]  # behind a load balancer
        user = f"pg-crowd-{n}"
        session = await service.new_session(user)
        return [
            *(await turn(service, user, session, f"$ echo {n}-0")),
            *(await turn(service, user, session, f"$ echo {n}-1")),
        ]

    results = await asyncio.gather(*(person(n) for n in range(30)), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures[0]
    assert results == [[f"{n}-0\n", f"{n}-1\n"] for n in range(30)]
