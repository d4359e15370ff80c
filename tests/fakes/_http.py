"""What both fake model APIs share: a loopback HTTP server, request records, violations, scripts.

A fake is a real HTTP server on 127.0.0.1 (a free port) served from a thread, so the app's real
clients (google-genai over aiohttp, LiteLLM over httpx) talk to it exactly as they would to the
real API. Each fake subclass turns a `RecordedRequest` into an `HttpResponse`; this module only
moves bytes, keeps records and plays the script.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

logger = logging.getLogger(__name__)


@dataclass
class RecordedRequest:
    """One HTTP request as the fake received it: the raw bytes and the parsed JSON body."""

    index: int
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    json: Any  # parsed body, None when empty or not JSON
    received_at: float  # time.monotonic()
    # Set by the server after the reply: the client went away before the reply was fully sent.
    disconnected: bool = False

    @property
    def size(self) -> int:
        """Bytes of the request body as sent on the wire (what a token bill grows with)."""
        return len(self.body)


@dataclass(frozen=True)
class Violation:
    """A request broke the API's contract. `rejected`: the real API answers it with an error."""

    request_index: int
    rule: str
    detail: str
    rejected: bool

    def __str__(self) -> str:
        verdict = "rejected by the real API" if self.rejected else "contract"
        return f"request #{self.request_index} [{self.rule}, {verdict}]: {self.detail}"


@dataclass(frozen=True)
class ApiError:
    """A scripted (or validation) error reply: HTTP status and the provider's JSON error body."""

    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class HttpResponse:
    """What a fake sends back. An iterable `body` is streamed (chunked), one piece per write."""

    status: int
    body: bytes | Iterable[bytes]
    content_type: str = "application/json; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # pause before each streamed piece after the first

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None):
        return cls(status, json.dumps(payload, indent=2).encode(), headers=dict(headers or {}))


R = TypeVar("R")  # a provider's reply type


class Script(Generic[R]):
    """Steps played one per model request: a reply, an `ApiError`, or a callable building either.

    A callable step receives the `RecordedRequest` (its `.json` is the parsed body), so a test can
    answer from what the app actually sent (e.g. echo a tool result).
    """

    def __init__(self) -> None:
        self._steps: deque[R | ApiError | Callable[[RecordedRequest], R | ApiError]] = deque()
        self._lock = threading.Lock()

    def add(self, *steps: R | ApiError | Callable[[RecordedRequest], R | ApiError]) -> None:
        with self._lock:
            self._steps.extend(steps)

    def take(self, request: RecordedRequest) -> R | ApiError | None:
        """The next step resolved against `request`, or None when the script is used up."""
        with self._lock:
            if not self._steps:
                return None
            step = self._steps.popleft()
        return step(request) if callable(step) else step

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._steps)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address, handler) -> None:
        super().__init__(address, handler)
        self.app: FakeApiServer | None = None
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real APIs; streams use chunked encoding
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.sockets_lock:
            self.server.open_sockets.add(self.connection)

    def finish(self) -> None:
        with self.server.sockets_lock:
            self.server.open_sockets.discard(self.connection)
        with contextlib.suppress(OSError):  # the client already closed the connection
            super().finish()

    def handle(self) -> None:
        # A client dropping a keep-alive connection is normal at its shutdown.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            super().handle()

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake %s: " + format, self.server.server_address[1], *args)

    def _dispatch(self) -> None:
        app = self.server.app
        assert app is not None
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = app._record(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        try:
            response = app.handle(request)
        except Exception as exc:  # a bug in the fake must fail the test, not hang the client
            logger.exception("fake %s crashed on request #%d", type(app).__name__, request.index)
            app.violate(request, "fake", f"the fake crashed: {exc!r}", rejected=False)
            response = HttpResponse.json(500, {"error": {"code": 500, "message": repr(exc)}})
        try:
            self._send(response)
        except (BrokenPipeError, ConnectionResetError):
            request.disconnected = True
            self.close_connection = True

    def _send(self, response: HttpResponse) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if isinstance(response.body, bytes):
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i, piece in enumerate(response.body):
            if i and response.delay_s:
                time.sleep(response.delay_s)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class FakeApiServer(Generic[R]):
    """Base of the fakes: start/stop, records, violations, the script.

    Use as a context manager or call `start()`/`stop()`. `url` is `http://127.0.0.1:<port>`.
    Subclasses implement `handle(request) -> HttpResponse` and validate into `violate()`.
    """

    def __init__(self) -> None:
        self.script: Script[R] = Script()
        self.requests: list[RecordedRequest] = []
        self.violations: list[Violation] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeApiServer[R]:
        server = _Server(("127.0.0.1", 0), _Handler)  # port 0: a free port
        server.app = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        logger.debug("%s listening on %s", type(self).__name__, self.url)
        return self

    def stop(self) -> None:
        """Stop serving and cut open keep-alive connections; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        with server.sockets_lock:
            for sock in list(server.open_sockets):
                with contextlib.suppress(OSError):  # already closed by the client
                    sock.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- pointing a client at the fake -----------------------------------------------------

    # Variables that would send the client elsewhere (another endpoint, Vertex): unset by use_in.
    displaced_env: tuple[str, ...] = ()

    def env(self, api_key: str = "fake") -> dict[str, str]:
        """The environment that points the fake's client library here."""
        raise NotImplementedError

    def use_in(self, environment: Any) -> None:
        """Point the client library in this process at the fake through `environment` (a
        pytest MonkeyPatch): `env()` set, `displaced_env` and proxies out of the way."""
        for name in self.displaced_env:
            environment.delenv(name, raising=False)
        for name, value in self.env().items():
            environment.setenv(name, value)
        environment.setenv("NO_PROXY", "127.0.0.1,localhost")
        environment.setenv("no_proxy", "127.0.0.1,localhost")

    # -- scripting and inspection ----------------------------------------------------------

    def play(self, *steps: R | ApiError | Callable[[RecordedRequest], R | ApiError]) -> None:
        """Append steps to the script (each model request consumes one)."""
        self.script.add(*steps)

    def violate(self, request: RecordedRequest, rule: str, detail: str, *, rejected: bool) -> None:
        with self._lock:
            self.violations.append(Violation(request.index, rule, detail, rejected))
        logger.debug("fake violation: %s", self.violations[-1])

    @property
    def rejections(self) -> list[Violation]:
        """The violations the real API would have answered with an error."""
        return [v for v in self.violations if v.rejected]

    def assert_clean(self, *, allow: Collection[str] = ()) -> None:
        """No violations (except of the rules in `allow`) and no unplayed script steps."""
        problems = [str(v) for v in self.violations if v.rule not in allow]
        if self.script.remaining:
            problems.append(f"{self.script.remaining} scripted step(s) never requested")
        assert not problems, "\n".join(problems)

    def _record(self, **fields: Any) -> RecordedRequest:
        try:
            parsed = json.loads(fields["body"]) if fields["body"] else None
        except ValueError:
            parsed = None
        with self._lock:
            request = RecordedRequest(
                index=len(self.requests), json=parsed, received_at=time.monotonic(), **fields
            )
            self.requests.append(request)
        return request

    def handle(self, request: RecordedRequest) -> HttpResponse:  # pragma: no cover - abstract
        raise NotImplementedError


def sse_events(payloads: Iterable[Any], *, done: bool = False) -> Iterator[bytes]:
    """Server-sent events, one `data: <json>` event per payload (`data: [DONE]` at the end)."""
    for payload in payloads:
        yield b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\r\n\r\n"
    if done:
        yield b"data: [DONE]\n\n"


def split_text(text: str, pieces: int) -> list[str]:
    """`text` cut into at most `pieces` consecutive parts at word boundaries (none empty)."""
    words = text.split(" ")
    pieces = max(1, min(pieces, len(words)))
    size, extra = divmod(len(words), pieces)
    out, start = [], 0
    for i in range(pieces):
        end = start + size + (1 if i < extra else 0)
        out.append(" ".join(words[start:end]) + (" " if end < len(words) else ""))
        start = end
    return [p for p in out if p]
