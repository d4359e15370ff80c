"""A client of the second Docker daemon (tests/conftest.py) over TCP with TLS, as a remote host."""

from __future__ import annotations

import pytest

from executor import DockerExecutionClient
from executor.engines.docker import DockerEngine
from tests.conftest import NO_EXTRAS


@pytest.fixture
async def tls_executor(second_dockerd, app_label, tmp_path, monkeypatch):
    """A client of the remote daemon over TLS. A host-wide REQUESTS_CA_BUNDLE (a CA that did not
    sign the daemon's certificate) must not replace Docker's own CA."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    engine = DockerEngine(environ=second_dockerd.tls_environ())
    client = DockerExecutionClient(
        sandbox_engine=engine,
        app_label=f"{app_label}-tls",
        state_dir=tmp_path,
        audit_log=tmp_path / "audit.jsonl",
        **NO_EXTRAS,
    )
    yield client
    client.cleanup_all(remove_volumes=True)
    await client.aclose(remove_containers=False)
