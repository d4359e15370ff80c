"""The egress tier's stand-ins work: the host's own pip fetches from the local index, over
HTTP and HTTPS, and the wheels install and import. Offline: everything is on 127.0.0.1, and
this machine's pip configuration (local indexes, find-links) is switched off."""

from __future__ import annotations

import socket
import subprocess
import sys
import zipfile

import pytest

from tests.egress.support import (
    IndexServer,
    build_wheel,
    make_tls,
    pip_environment,
    sha256_file,
    write_index,
)

pytestmark = pytest.mark.egress


def pip(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--isolated", "--no-cache-dir", *args],
        env=pip_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = tmp_path_factory.mktemp("index")
    wheels = tmp_path_factory.mktemp("wheels")
    built = [
        build_wheel(wheels, "tiny-pkg", "1.0", requires=["big-pkg"]),
        build_wheel(wheels, "tiny-pkg", "2.0"),
        build_wheel(wheels, "big_pkg", "1.0", payload_bytes=30 << 20),
    ]
    write_index(root, built)
    return root


def test_pip_downloads_from_the_local_index_and_the_server_records_it(index, tmp_path):
    with IndexServer(index) as server:
        result = pip(
            "download", "--index-url", server.index_url, "--no-deps", "-d", str(tmp_path),
            "--retries", "0", "--timeout", "10", "tiny-pkg==1.0", "big-pkg",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        paths = [r.path for r in server.requests]
    big = tmp_path / "big_pkg-1.0-py3-none-any.whl"
    assert big.stat().st_size > 30 << 20  # incompressible: the zip is as large as its data
    assert sha256_file(big) == sha256_file(index / "files" / big.name)
    assert (tmp_path / "tiny_pkg-1.0-py3-none-any.whl").exists()
    assert "/simple/tiny-pkg/" in paths
    assert "/simple/big-pkg/" in paths
    assert "/files/big_pkg-1.0-py3-none-any.whl" in paths
    assert all(r.host == f"127.0.0.1:{server.port}" for r in server.requests)


def test_the_wheels_install_and_import(index, tmp_path):
    target = tmp_path / "site"
    wheels = sorted((index / "files").glob("*.whl"))
    small = [w for w in wheels if w.name.startswith(("tiny_pkg-2.0", "big_pkg"))]
    result = pip("install", "--no-index", "--no-deps", "--target", str(target), *map(str, small))
    assert result.returncode == 0, result.stderr
    check = subprocess.run(
        [sys.executable, "-c", "import tiny_pkg, big_pkg, os; print(tiny_pkg.VERSION, "
         "os.path.getsize(os.path.join(os.path.dirname(big_pkg.__file__), 'payload.bin')))"],
        cwd=target, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert check.stdout.split() == ["2.0", str(30 << 20)]
    with zipfile.ZipFile(small[0]) as archive:
        assert "big_pkg-1.0.dist-info/RECORD" in archive.namelist()


def test_the_https_index_is_trusted_through_its_ca_only(index, tmp_path):
    tls = make_tls(tmp_path / "tls")
    with IndexServer(index, tls=tls) as server:
        trusted = pip(
            "download", "--index-url", server.index_url, "--cert", str(tls.ca), "--no-deps",
            "-d", str(tmp_path / "dl"), "--retries", "0", "--timeout", "10", "tiny-pkg==2.0",
        )  # fmt: skip
        assert trusted.returncode == 0, trusted.stderr
        untrusted = pip(
            "download", "--index-url", server.index_url, "--no-deps", "-d", str(tmp_path / "x"),
            "--retries", "0", "--timeout", "10", "tiny-pkg==2.0",
        )  # fmt: skip
        assert untrusted.returncode != 0
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stdout + untrusted.stderr
        # The test name of the HTTPS recipe: dial 127.0.0.1, verify the certificate as index.test.
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
            tls.client_context().wrap_socket(raw, server_hostname="index.test") as wrapped,
        ):
            wrapped.sendall(
                b"GET /simple/ HTTP/1.1\r\nHost: index.test\r\nConnection: close\r\n\r\n"
            )
            reply = wrapped.recv(100)
        assert reply.startswith(b"HTTP/1.1 200")
        assert any(r.host == "index.test" for r in server.requests)
