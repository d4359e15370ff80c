"""A second Docker daemon, started by the tests that need one (remote hosts, a daemon that goes
away, gVisor), on its own socket, data root and exec root, and stopped by its pid. It never
touches the main daemon or its containers.

Its data root is kept between runs under /var/lib/mce-test-dockerd so the sandbox image (1.2 GB)
is loaded into it only when it changed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import free_port

DATA_ROOT = Path("/var/lib/mce-test-dockerd")
EXEC_ROOT = Path("/run/mce-test-dockerd")  # short: containerd's socket paths live under it


@dataclass
class TlsFiles:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl."""

    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    def make(self) -> TlsFiles:
        f = self.folder
        f.mkdir(parents=True, exist_ok=True)

        def ssl(*args: str) -> None:
            subprocess.run(["openssl", *args], cwd=f, check=True, capture_output=True)

        ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
            "-keyout", "ca-key.pem", "-out", "ca.pem")  # fmt: skip
        for name, ext in (
            ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
            ("client", "extendedKeyUsage=clientAuth"),
        ):
            (f / f"{name}.ext").write_text(ext + "\n")
            ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}-key.pem", "-out", f"{name}.csr")  # fmt: skip
            ssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
                "-CAcreateserial", "-days", "1", "-extfile", f"{name}.ext",
                "-out", f"{name}-cert.pem")  # fmt: skip
        # The file names docker-py expects in DOCKER_CERT_PATH.
        shutil.copy(f / "client-cert.pem", f / "cert.pem")
        shutil.copy(f / "client-key.pem", f / "key.pem")
        return self


def host_bridges() -> set[str]:
    """Names of the bridge interfaces on this host (the main daemon's docker0 among them)."""
    listed = subprocess.run(
        ["ip", "-o", "link", "show", "type", "bridge"], capture_output=True, text=True, check=True
    ).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in listed.splitlines() if line}


@dataclass
class SecondDockerd:
    """`dockerd` on a unix socket of its own (and optionally TCP with TLS)."""

    name: str = "d2"
    tls: TlsFiles | None = None
    runtimes: dict[str, str] = field(default_factory=dict)  # name -> executable path
    port: int = 0
    process: subprocess.Popen | None = None
    host_bridges: set[str] | None = None  # the host's bridges before this daemon first started

    @property
    def root(self) -> Path:
        return DATA_ROOT / self.name

    @property
    def socket_path(self) -> Path:
        return EXEC_ROOT / f"{self.name}.sock"

    @property
    def unix_host(self) -> str:
        return f"unix://{self.socket_path}"

    def tls_environ(self) -> dict[str, str]:
        assert self.tls is not None
        assert self.port
        return {
            "DOCKER_HOST": f"tcp://127.0.0.1:{self.port}",
            "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": str(self.tls.folder),
        }

    def start(self, timeout_s: float = 60) -> SecondDockerd:
        if self.host_bridges is None:
            self.host_bridges = host_bridges()
        EXEC_ROOT.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        argv = [
            "dockerd",
            "--host", self.unix_host,
            "--data-root", str(self.root / "data"),
            "--exec-root", str(EXEC_ROOT / self.name),
            "--pidfile", str(self.root / "dockerd.pid"),
            "--bridge", self._make_bridge(),
            "--iptables=false", "--ip-masq=false", "--ip-forward=false",
        ]  # fmt: skip
        if self.tls is not None:
            self.port = self.port or free_port()
            t = self.tls.folder
            argv += [
                "--host", f"tcp://127.0.0.1:{self.port}", "--tlsverify",
                "--tlscacert", str(t / "ca.pem"), "--tlscert", str(t / "server-cert.pem"),
                "--tlskey", str(t / "server-key.pem"),
            ]  # fmt: skip
        for name, path in self.runtimes.items():
            argv += ["--add-runtime", f"{name}={path}"]
        log = (self.root / "dockerd.log").open("ab")
        self.process = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = (self.root / "dockerd.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"the second dockerd did not start:\n{tail}")
            time.sleep(0.1)
        return self

    @property
    def bridge(self) -> str:
        return f"mce-{self.name}"[:15]  # interface names have at most 15 characters

    def _make_bridge(self) -> str:
        """A bridge of this daemon's own. Not `--bridge none`: a dockerd started so deletes the
        host's `docker0`, which belongs to the main daemon. The address is in TEST-NET-1
        (192.0.2.0/24, never routed); nothing is attached (the sandboxes have no network)."""
        if subprocess.run(["ip", "link", "show", self.bridge], capture_output=True).returncode:
            subnet = zlib.crc32(self.name.encode()) % 16 * 16
            for command in (
                ["ip", "link", "add", self.bridge, "type", "bridge"],
                ["ip", "addr", "add", f"192.0.2.{subnet + 1}/28", "dev", self.bridge],
                ["ip", "link", "set", self.bridge, "up"],
            ):
                subprocess.run(command, check=True, capture_output=True)
        return self.bridge

    def _answers(self) -> bool:
        result = subprocess.run(
            ["docker", "-H", self.unix_host, "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def prune(self) -> None:
        """Remove every container and volume left in this test-only daemon by an earlier run."""
        ids = subprocess.run(
            ["docker", "-H", self.unix_host, "ps", "-aq"], capture_output=True, text=True,
            check=False,
        ).stdout.split()  # fmt: skip
        if ids:
            subprocess.run(["docker", "-H", self.unix_host, "rm", "-f", *ids], capture_output=True,
                           check=False)  # fmt: skip
        subprocess.run(["docker", "-H", self.unix_host, "volume", "prune", "-f"],
                       capture_output=True, check=False)  # fmt: skip

    def load_image(self, image: str) -> None:
        """Copy `image` from the main daemon unless this daemon has the same one already."""

        def image_id(*host: str) -> str:
            result = subprocess.run(
                ["docker", *host, "image", "inspect", "--format", "{{.Id}}", image],
                capture_output=True,
                text=True,
                check=False,
            )
            return result.stdout.strip()

        wanted = image_id()
        if wanted and image_id("-H", self.unix_host) == wanted:
            return
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        subprocess.run(["docker", "-H", self.unix_host, "load", "-q"], stdin=save.stdout,
                       check=True, capture_output=True)  # fmt: skip
        save.wait()

    def stop(self) -> None:
        """SIGTERM by pid, then SIGKILL if it lingers; never by name."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True, check=False)
