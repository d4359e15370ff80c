"""A second Docker daemon reached over TCP with TLS (certificates made here), as a remote host."""

from __future__ import annotations

import shutil

import pytest

from executor import DockerExecutionClient
from executor.engines.docker import DockerEngine
from settings import ExecutorSettings
from tests.conftest import IN_CI, NO_EXTRAS
from tests.daemons import SecondDockerd, TlsFiles


@pytest.fixture(scope="session")
def second_dockerd(docker_client, tmp_path_factory):
    if shutil.which("dockerd") is None or shutil.which("openssl") is None:
        message = "dockerd and openssl are needed for the remote tier"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    tls = TlsFiles(tmp_path_factory.mktemp("docker-tls")).make()
    daemon = SecondDockerd(name="remote", tls=tls).start()
    try:
        daemon.prune()
        daemon.load_image(ExecutorSettings().image_name)
        yield daemon
    finally:
        daemon.stop()


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
