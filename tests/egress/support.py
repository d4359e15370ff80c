"""Local stand-ins for the internet, for the egress tier: every one listens on 127.0.0.1.

- `build_wheel` / `write_index`: pure-Python wheels made in a temp dir (one may carry ~30 MB of
  incompressible data) and a static PEP 503 index over them (`simple/<name>/index.html` with
  sha256 fragments), so `pip install` has something real to fetch offline.
- `IndexServer`: serves such a folder over HTTP, or HTTPS with a CA from `make_tls`, and records
  every connection and request it sees (a refused host must see none).
- Raw TCP peers: `EchoPeer`, `TransferPeer` (sends N bytes and hashes both directions),
  `FloodPeer` (sends 1 GB unless stopped), `SilentPeer` (accepts and never answers).
- `mapping_resolver`: a resolver for `EgressRelay` that maps test names to loopback addresses
  and never asks a real DNS server.

Test traffic goes to loopback only. Each server is a context manager; `close()` stops it and
joins its threads.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import logging
import os
import re
import socket
import ssl
import subprocess
import threading
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


# -- wheels and a PEP 503 index ------------------------------------------------------------


def normalise(name: str) -> str:
    """The PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def build_wheel(
    folder: Path,
    name: str,
    version: str = "1.0",
    *,
    source: str | None = None,
    payload_bytes: int = 0,
    requires: Iterable[str] = (),
) -> Path:
    """Write `<name>-<version>-py3-none-any.whl` into `folder` and return its path.

    The wheel holds one package `<name>` (its `__init__.py` is `source`, by default one that
    sets `VERSION`), and with `payload_bytes` a `payload.bin` of that many random (so
    incompressible) bytes. `requires` become `Requires-Dist` lines.
    """
    module = name.replace("-", "_").lower()
    dist = f"{module}-{version}"
    if source is None:
        source = f"VERSION = {version!r}\nNAME = {name!r}\n"
    files: list[tuple[str, bytes]] = [(f"{module}/__init__.py", source.encode())]
    if payload_bytes:
        files.append((f"{module}/payload.bin", os.urandom(payload_bytes)))
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    files.append((f"{dist}.dist-info/METADATA", metadata.encode()))
    wheel = "Wheel-Version: 1.0\nGenerator: egress-tests\nRoot-Is-Purelib: true\n"
    files.append((f"{dist}.dist-info/WHEEL", (wheel + "Tag: py3-none-any\n").encode()))
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files)
    files.append((f"{dist}.dist-info/RECORD", (record + f"{dist}.dist-info/RECORD,,\n").encode()))
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files:
            archive.writestr(path, data)
    return target


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(partial(handle.read, 1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_index(root: Path, wheels: Iterable[Path]) -> Path:
    """A static PEP 503 index in `root`: wheels copied to `root/files`, one page per project
    under `root/simple`. Returns `root/simple` (serve `root`, point pip at `/simple/`)."""
    files, simple = root / "files", root / "simple"
    files.mkdir(parents=True, exist_ok=True)
    simple.mkdir(parents=True, exist_ok=True)
    projects: dict[str, list[Path]] = {}
    for wheel in wheels:
        copy = files / wheel.name
        if copy != wheel:
            copy.write_bytes(wheel.read_bytes())
        projects.setdefault(normalise(wheel.name.split("-")[0]), []).append(copy)
    for project, project_files in projects.items():
        links = "".join(
            f'<a href="../../files/{html.escape(f.name)}#sha256={sha256_file(f)}">'
            f"{html.escape(f.name)}</a><br>\n"
            for f in sorted(project_files)
        )
        page = simple / project / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")
    listing = "".join(f'<a href="{p}/">{p}</a><br>\n' for p in sorted(projects))
    (simple / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{listing}</body></html>\n")
    return simple


# -- TLS -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """A test CA (`ca`, what a client trusts) and a server certificate and key it signed."""

    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


def make_tls(
    folder: Path,
    names: Iterable[str] = ("index.test", "localhost"),
    ips: Iterable[str] = (LOOPBACK, "::1"),
) -> TlsFiles:
    """Make a CA and a server certificate for `names` and `ips` with the openssl CLI."""
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *key, "-days", "2", "-subj", "/CN=egress-test-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", "ca-key.pem", "-out", "ca.pem")  # fmt: skip
    alt = ",".join([*(f"DNS:{n}" for n in names), *(f"IP:{i}" for i in ips)])
    (folder / "server.ext").write_text(
        f"subjectAltName={alt}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
        "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    openssl("req", *key, "-subj", "/CN=egress-test-server",
            "-keyout", "server-key.pem", "-out", "server.csr")  # fmt: skip
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
            "-CAcreateserial", "-days", "2", "-extfile", "server.ext",
            "-out", "server-cert.pem")  # fmt: skip
    return TlsFiles(folder / "ca.pem", folder / "server-cert.pem", folder / "server-key.pem")


# -- an index server that records what it sees ---------------------------------------------


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    host: str  # the Host header
    headers: dict[str, str]  # lower-case names


class _Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _RecordingHTTPServer

    def parse_request(self) -> bool:
        ok = super().parse_request()
        if ok:
            headers = {k.lower(): v for k, v in self.headers.items()}
            self.server.seen(SeenRequest(self.command, self.path, headers.get("host", ""), headers))
        return ok

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("index %s: " + format, self.address_string(), *args)


class _RecordingHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, context: ssl.SSLContext | None) -> None:
        self.context = context
        self.requests: list[SeenRequest] = []
        self.connections = 0
        self._lock = threading.Lock()
        super().__init__((LOOPBACK, 0), partial(_Handler, directory=str(root)))

    def verify_request(self, request: object, client_address: object) -> bool:
        with self._lock:
            self.connections += 1
        return True

    def finish_request(self, request: socket.socket, client_address: object) -> None:
        if self.context is not None:  # the handshake runs in the connection's own thread
            try:
                request = self.context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                logger.debug("index: TLS handshake failed: %s", exc)
                return
        super().finish_request(request, client_address)

    def seen(self, request: SeenRequest) -> None:
        with self._lock:
            self.requests.append(request)


class IndexServer:
    """Serves `root` (e.g. a `write_index` folder) on 127.0.0.1, over HTTPS when `tls` is
    given, and records every connection (`connections`) and request (`requests`)."""

    def __init__(self, root: Path, tls: TlsFiles | None = None) -> None:
        self.tls = tls
        self._server = _RecordingHTTPServer(root, tls.server_context() if tls else None)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{LOOPBACK}:{self.port}"

    def url_for(self, host: str) -> str:
        """The server's URL under another name (with a resolver that maps it here)."""
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def index_url(self) -> str:
        return self.url + "/simple/"

    @property
    def requests(self) -> list[SeenRequest]:
        with self._server._lock:
            return list(self._server.requests)

    @property
    def connections(self) -> int:
        with self._server._lock:
            return self._server.connections

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> IndexServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- raw TCP peers -------------------------------------------------------------------------


class TcpPeer:
    """A listener on 127.0.0.1 that counts what it accepts; subclasses say what each
    connection does (`serve`, run in its own thread unless `threaded` is false)."""

    threaded = True

    def __init__(self, backlog: int = 512) -> None:
        self._listener = socket.create_server((LOOPBACK, 0), backlog=backlog)
        self.port: int = self._listener.getsockname()[1]
        self.accepted = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._closing.is_set():
                    conn.close()
                    return
                self.accepted += 1
                self._sockets.append(conn)
            if self.threaded:
                thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
                with self._lock:
                    self._threads.append(thread)
                thread.start()

    def _run(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            self.serve(conn)

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._closing.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._acceptor.join(timeout=5)
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for conn in sockets:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout=5)
        for conn in sockets:
            conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EchoPeer(TcpPeer):
    """Sends back every byte it receives; half-closes when the client does."""

    def serve(self, conn: socket.socket) -> None:
        while data := conn.recv(1 << 16):
            conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)


@dataclass
class TransferRecord:
    sent: int = 0
    received: int = 0
    sent_sha256: str = ""
    received_sha256: str = ""
    done: threading.Event = field(default_factory=threading.Event)


class TransferPeer(TcpPeer):
    """Sends `send_bytes` random bytes per connection while reading everything the client
    sends until EOF; records both sizes and sha256 digests in `records`."""

    def __init__(self, send_bytes: int) -> None:
        self.send_bytes = send_bytes
        self.records: list[TransferRecord] = []
        super().__init__()

    def serve(self, conn: socket.socket) -> None:
        record = TransferRecord()
        self.records.append(record)

        def read() -> None:
            digest = hashlib.sha256()
            with contextlib.suppress(OSError):
                while data := conn.recv(1 << 16):
                    digest.update(data)
                    record.received += len(data)
            record.received_sha256 = digest.hexdigest()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        digest, left = hashlib.sha256(), self.send_bytes
        while left:
            block = os.urandom(min(left, 1 << 16))
            conn.sendall(block)
            digest.update(block)
            record.sent += len(block)
            left -= len(block)
        record.sent_sha256 = digest.hexdigest()
        conn.shutdown(socket.SHUT_WR)
        reader.join()
        record.done.set()


class FloodPeer(TcpPeer):
    """Sends `total` bytes (1 GB by default) to each connection as fast as it is read;
    `sent` counts what it managed to send before the other side went away."""

    def __init__(self, total: int = 1 << 30) -> None:
        self.total = total
        self.sent = 0
        super().__init__()

    def serve(self, conn: socket.socket) -> None:
        block = os.urandom(1 << 16)
        left = self.total
        while left:
            n = conn.send(block[: min(left, len(block))])
            with self._lock:
                self.sent += n
            left -= n
        conn.shutdown(socket.SHUT_WR)


class SilentPeer(TcpPeer):
    """Accepts connections and never answers (or reads): they stay open until `close()`."""

    threaded = False


class FullBacklogPeer:
    """A listener that never accepts and whose backlog is already full, so a new connection
    to it gets no answer at all (the kernel drops its SYNs): a connect timeout, on loopback."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind((LOOPBACK, 0))
        self._listener.listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._filler = socket.create_connection((LOOPBACK, self.port), timeout=5)

    def close(self) -> None:
        self._filler.close()
        self._listener.close()

    def __enter__(self) -> FullBacklogPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def mapping_resolver(mapping: Mapping[str, str | Iterable[str]]):
    """A resolver for `Allowlist.decide`/`EgressRelay` that knows only `mapping` (name ->
    address or addresses) and fails for every other name, so no test asks a real DNS server.
    `calls` lists the names it was asked."""
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        found = mapping.get(host)
        if found is None:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} is not a test name")
        return [found] if isinstance(found, str) else list(found)

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def pip_environment(**extra: str) -> dict[str, str]:
    """The environment for running a pip that must ignore this machine's pip configuration
    (global find-links and local indexes would otherwise answer instead of the test index),
    its CA bundle variables (requests lets them override `--cert`) and its proxies."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    environ.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        environ.pop(name, None)
        environ.pop(name.lower(), None)
    return environ


# -- scripts that talk to a sandbox's egress proxy -------------------------------------------

PROXY_PRELUDE = (
    "import json, os, socket, sys, time\n"
    "def proxy():\n"
    "    _, port = os.environ['HTTP_PROXY'].rsplit(':', 1)\n"
    "    return socket.create_connection(('127.0.0.1', int(port)), timeout=30)\n"
)


def proxy_script(body: str) -> str:
    """A script to run in a sandbox: `proxy()` opens a connection to its egress proxy (the one
    its HTTP_PROXY names, on the sandbox's own loopback), then `body` runs."""
    return PROXY_PRELUDE + body
