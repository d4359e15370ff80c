"""With no engine to talk to, every public method fails fast with the executor's own error.

No daemon is needed: DOCKER_HOST names a socket that does not exist (the tier that stops a real
second daemon mid-session is tests/remote/).
"""

from __future__ import annotations

import time

import pytest

from executor import DockerExecutionClient, SandboxUnavailableError
from executor.engines.docker import DockerEngine

CALLS = {
    "execute_bash": lambda c: c.execute_bash("u", "true"),
    "run": lambda c: c.run("u", "true"),
    "run_python": lambda c: c.run_python("u", "1"),
    "reset_python": lambda c: c.reset_python("u"),
    "read_file": lambda c: c.read_file("u", "a.txt"),
    "read_text": lambda c: c.read_text("u", "a.txt"),
    "write_file": lambda c: c.write_file("u", "a.txt", "x"),
    "upload_file": lambda c: c.upload_file("u", "a.txt", b"x"),
    "download_file": lambda c: c.download_file("u", "a.txt"),
    "list_files": lambda c: c.list_files("u"),
    "start": lambda c: c.start(),
    "stop": lambda c: c.stop("u"),
    "delete_session": lambda c: c.delete_session("u"),
    "remove_container": lambda c: c.remove_container("u"),
    "sandbox_info": lambda c: c.sandbox_info("u"),
    "inventory": lambda c: c.inventory(),
}


@pytest.fixture
async def unreachable(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    client = DockerExecutionClient(
        app_label="mce-unreachable", state_dir=tmp_path, audit_log=tmp_path / "audit.jsonl"
    )
    yield client
    await client.aclose(remove_containers=False)


@pytest.mark.parametrize("method", list(CALLS))
async def test_every_public_method_says_docker_is_unreachable_within_a_second(unreachable, method):
    started = time.monotonic()
    with pytest.raises(SandboxUnavailableError, match="Is Docker running"):
        await CALLS[method](unreachable)
    assert time.monotonic() - started < 1.0


async def test_downloads_to_a_file_fail_cleanly_and_leave_no_partial_file(unreachable, tmp_path):
    dest = tmp_path / "out.bin"
    with pytest.raises(SandboxUnavailableError):
        await unreachable.download_to("u", "a.txt", dest)
    with pytest.raises(SandboxUnavailableError):
        await unreachable.zip_workspace_to("u", tmp_path / "w.zip")
    assert not dest.exists()
    assert not (tmp_path / "w.zip").exists()


async def test_the_blocking_cleanup_raises_the_same_error(unreachable):
    with pytest.raises(SandboxUnavailableError):
        unreachable.cleanup_all()


def test_ssh_docker_hosts_are_refused_with_the_forwarding_recipe():
    with pytest.raises(SandboxUnavailableError, match="ssh -NL"):
        DockerEngine(environ={"DOCKER_HOST": "ssh://user@host"})


def test_building_an_engine_does_not_connect():
    engine = DockerEngine(environ={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    with pytest.raises(SandboxUnavailableError):
        engine.ping()


async def test_a_failed_deletion_is_audited_with_its_error(unreachable, tmp_path):
    from tests.support import audit_lines

    with pytest.raises(SandboxUnavailableError):
        await unreachable.delete_session("u")
    (entry,) = audit_lines(tmp_path / "audit.jsonl")
    assert entry["operation"] == "delete"
    assert entry["error"].startswith("SandboxUnavailableError")
