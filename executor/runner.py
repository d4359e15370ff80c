"""Host side of the resident runner: one long-lived exec per session, framed requests over it.

The runner runs as the sandbox user, so sandbox code can kill it, flood through it, or write
frames of its own. Nothing it says is trusted beyond the session it belongs to: frame sizes are
capped, kinds and JSON are checked, output is capped here whatever it claims, and every wait has
a deadline. Any failure raises `RunnerError`; whether the request had been acknowledged tells
the caller if the command may have run (then it is stopped, never re-run) or not (then it runs
through plain `docker exec` instead). The protocol is described in `_runner.py`.
"""

from __future__ import annotations

import contextlib
import json
import select
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors

import docker

from . import _hardening
from ._stream import CappedBuffer, _unwrap

_HERE = Path(__file__).parent
RUNNER_SOURCE = (_HERE / "_runner.py").read_text()
KERNEL_SOURCE = (_HERE / "_kernel.py").read_text()
FILES_SOURCE = (_HERE / "_sandbox_files.py").read_text()

# Reads length-prefixed sources from stdin and runs the first, so `ps` in the sandbox shows a
# short command line instead of pages of source.
BOOTSTRAP = (
    "import os,struct\n"
    "def r(n):\n"
    " b=b''\n"
    " while len(b)<n:\n"
    "  c=os.read(0,n-len(b))\n"
    "  if not c: raise SystemExit(1)\n"
    "  b+=c\n"
    " return b\n"
    "S=[r(struct.unpack('>I',r(4))[0]).decode() for _ in range(3)]\n"
    "exec(compile(S[0],'sandbox-runner','exec'),{'__name__':'__main__','SOURCES':S})\n"
)
_HEADER = struct.Struct(">BII")
_DOCKER_HEADER = struct.Struct(">BxxxL")
REQUEST, KILL, DATA, EOF = 1, 2, 3, 4
OUT, ERR, DONE, HELLO, ACK = 10, 11, 12, 13, 14
_KNOWN = {OUT, ERR, DONE, HELLO, ACK}
MAX_FRAME = 1 << 20
_ACK_TIMEOUT_S = 5.0
_START_TIMEOUT_S = 10.0
_POLL_S = 0.25

OnChunk = Callable[[str, bytes], None]


class RunnerError(Exception):
    """The runner is dead, hung or misbehaving. `acked`: the request may have started."""

    def __init__(
        self,
        reason: str,
        *,
        acked: bool,
        gone: bool = False,
        stdout: bytes = b"",
        stderr: bytes = b"",
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.acked = acked
        self.gone = gone  # the runner process is simply not there (killed, container restarted)
        self.stdout = stdout
        self.stderr = stderr


@dataclass
class RunnerResult:
    exit_code: int
    stdout: bytes
    stderr: bytes
    stdout_dropped: int
    stderr_dropped: int
    timed_out: bool
    killed: bool
    python_lost: bool
    oom: bool
    flooded: bool
    cancelled: bool


def _int(value: Any, low: int = 0, high: int = 1 << 62) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"not an integer in range: {value!r}")
    return value


class RunnerChannel:
    """One runner process in one container, driven synchronously (callers hold the session lock)."""

    def __init__(
        self,
        client: docker.DockerClient,
        container_id: str,
        *,
        kill_grace_s: float,
        kill_all: Callable[[], None],
    ) -> None:
        self.kill_grace_s = kill_grace_s
        self.kill_all = kill_all  # kills every sandbox-user process: used before abandoning
        argv = ["python3", "-I", "-S", "-u", "-c", BOOTSTRAP, "sandbox-runner"]
        exec_kwargs = _hardening.exec_kwargs(stdin=True)
        exec_id = client.api.exec_create(container_id, argv, **exec_kwargs)["Id"]
        raw = client.api.exec_start(exec_id, socket=True)
        self._sock, initial = _unwrap(raw)
        self._sock.setblocking(False)
        self._docker = bytearray(initial)  # bytes of docker's multiplexing, not yet parsed
        self._frames = bytearray()  # the runner's stdout: our protocol
        self._stderr_tail = bytearray()
        self._eof = False
        self._next_id = 1
        self.closed = False
        try:
            sources = b"".join(
                struct.pack(">I", len(s.encode())) + s.encode()
                for s in (RUNNER_SOURCE, FILES_SOURCE, KERNEL_SOURCE)
            )
            self._send_raw(sources, time.monotonic() + _START_TIMEOUT_S)
            kind, _, payload = self._next_frame(time.monotonic() + _START_TIMEOUT_S)
            if kind != HELLO or json.loads(payload).get("version") != 1:
                raise RunnerError("answered its start with nonsense", acked=False)
        except (RunnerError, ValueError, AttributeError) as exc:
            self.abandon()
            reason = exc.reason if isinstance(exc, RunnerError) else "answered nonsense"
            raise RunnerError(
                f"did not start ({reason}){self._diagnostics()}", acked=False
            ) from exc

    # -- plumbing --------------------------------------------------------------------------

    def _diagnostics(self) -> str:
        tail = bytes(self._stderr_tail[-300:]).decode("utf-8", "replace").strip()
        return f": {tail}" if tail else ""

    def alive(self) -> bool:
        """False when the runner is gone, or has said something between requests."""
        if self.closed or self._eof:
            return False
        readable, _, _ = select.select([self._sock], [], [], 0)
        if not readable:
            return True
        try:
            data = self._sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        if not data:
            return False
        self._docker += data
        self._parse_docker()
        return not self._frames  # unsolicited output: not to be trusted further

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self._sock.close()

    def abandon(self) -> None:
        """Stop using a misbehaving runner without wedging the container: kill it, drain its
        stream to the end, then close (an undrained, unclosed exec stream blocks later execs)."""
        if self.closed:
            return
        if not self._eof:
            self.kill_all()
            deadline = time.monotonic() + self.kill_grace_s
            while not self._eof and time.monotonic() < deadline:
                readable, _, _ = select.select([self._sock], [], [], 0.1)
                if not readable:
                    continue
                try:
                    if not self._sock.recv(1 << 20):
                        self._eof = True
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    break
        self.close()

    def _send(self, kind: int, rid: int, payload: bytes, deadline: float) -> None:
        self._send_raw(_HEADER.pack(kind, rid, len(payload)) + payload, deadline, kind != REQUEST)

    def _send_raw(self, raw: bytes, deadline: float, acked: bool = False) -> None:
        data = memoryview(raw)
        while data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RunnerError("stopped reading its input", acked=acked)
            _, writable, _ = select.select([], [self._sock], [], remaining)
            if not writable:
                continue
            try:
                data = data[self._sock.send(data) :]
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                raise RunnerError(f"is gone ({exc.strerror})", acked=acked, gone=True) from exc

    def _parse_docker(self) -> None:
        while len(self._docker) >= _DOCKER_HEADER.size:
            stream, length = _DOCKER_HEADER.unpack_from(self._docker)
            if len(self._docker) < _DOCKER_HEADER.size + length:
                return
            payload = self._docker[_DOCKER_HEADER.size : _DOCKER_HEADER.size + length]
            del self._docker[: _DOCKER_HEADER.size + length]
            if stream == 1:
                self._frames += payload
            else:
                self._stderr_tail = (self._stderr_tail + payload)[-4096:]

    def _next_frame(
        self, deadline: float, cancel: threading.Event | None = None
    ) -> tuple[int, int, bytes]:
        """The next complete frame, or RunnerError("timeout"/"cancel") at the deadline."""
        while True:
            if len(self._frames) >= _HEADER.size:
                kind, rid, length = _HEADER.unpack_from(self._frames)
                if kind not in _KNOWN or length > MAX_FRAME:
                    raise RunnerError("sent a malformed frame", acked=True)
                if len(self._frames) >= _HEADER.size + length:
                    payload = bytes(self._frames[_HEADER.size : _HEADER.size + length])
                    del self._frames[: _HEADER.size + length]
                    return kind, rid, payload
            if self._eof:
                raise RunnerError("is gone (its output ended)", acked=True, gone=True)
            if cancel is not None and cancel.is_set():
                raise _Interrupt("cancel")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Interrupt("deadline")
            readable, _, _ = select.select([self._sock], [], [], min(remaining, _POLL_S))
            if not readable:
                continue
            try:
                data = self._sock.recv(256 * 1024)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                self._eof = True
                continue
            self._docker += data
            self._parse_docker()

    # -- requests --------------------------------------------------------------------------

    def request(
        self,
        body: dict[str, Any],
        *,
        timeout_s: float,
        stdout_limit: int,
        stderr_limit: int,
        flood_limit: int | None = None,
        stdin: bytes | None = None,
        cancel: threading.Event | None = None,
        on_chunk: OnChunk | None = None,
    ) -> RunnerResult:
        rid = self._next_id
        self._next_id += 1
        stdout, stderr = CappedBuffer(stdout_limit), CappedBuffer(stderr_limit)
        started = time.monotonic()
        self._send(REQUEST, rid, json.dumps(body).encode(), started + _ACK_TIMEOUT_S)
        if stdin is not None:
            for offset in range(0, len(stdin), 256 * 1024):
                self._send(DATA, rid, stdin[offset : offset + 256 * 1024], started + timeout_s)
            self._send(EOF, rid, b"", started + timeout_s)
        acked, received = False, 0
        stop: str | None = None  # why we told the runner to kill: timeout, cancel or flood
        deadline = started + _ACK_TIMEOUT_S
        try:
            while True:
                try:
                    kind, frame_rid, payload = self._next_frame(
                        deadline, cancel if stop is None else None
                    )
                except _Interrupt as why:
                    if not acked:
                        raise RunnerError("did not take the request in time", acked=False) from why
                    if stop is not None:
                        raise RunnerError(
                            "did not stop the command when told to", acked=True
                        ) from why
                    stop = "cancel" if str(why) == "cancel" else "timeout"
                    self._kill_request(rid)
                    deadline = time.monotonic() + self.kill_grace_s
                    continue
                received += len(payload)
                if flood_limit is not None and received > flood_limit and stop is None:
                    if not acked:
                        raise RunnerError("flooded its output", acked=False)
                    stop = "flood"
                    self._kill_request(rid)
                    deadline = time.monotonic() + self.kill_grace_s
                if frame_rid != rid:
                    continue  # a stale or invented frame: ignored
                if not acked:
                    if kind != ACK:
                        raise RunnerError("answered a request it had not taken", acked=False)
                    acked = True
                    deadline = started + timeout_s + self.kill_grace_s  # it times itself first
                elif kind in (OUT, ERR):
                    (stdout if kind == OUT else stderr).feed(payload)
                    if on_chunk is not None:
                        on_chunk("stdout" if kind == OUT else "stderr", payload)
                elif kind == DONE:
                    return self._result(payload, stdout, stderr, stop or "")
                else:
                    raise RunnerError("sent a frame out of order", acked=True)
        except RunnerError as exc:
            exc.acked = exc.acked and acked
            exc.stdout, exc.stderr = bytes(stdout.data), bytes(stderr.data)
            if exc.gone:
                self.close()
            else:
                self.abandon()
            raise

    def _kill_request(self, rid: int) -> None:
        with contextlib.suppress(RunnerError):  # if it cannot even be told, the deadline decides
            self._send(KILL, rid, b"", time.monotonic() + self.kill_grace_s)

    def _result(
        self, payload: bytes, stdout: CappedBuffer, stderr: CappedBuffer, reason: str
    ) -> RunnerResult:
        try:
            done = json.loads(payload)
            exit_code = _int(done["exit_code"], 0, 255)
            sent = done.get("sent") or {}
            wrote_out = _int(sent.get("10", 0)) if sent else 0
            wrote_err = _int(sent.get("11", 0)) if sent else 0
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RunnerError("ended a request with nonsense", acked=True) from exc
        return RunnerResult(
            exit_code=exit_code,
            stdout=bytes(stdout.data),
            stderr=bytes(stderr.data),
            stdout_dropped=max(stdout.dropped, wrote_out - len(stdout.data)),
            stderr_dropped=max(stderr.dropped, wrote_err - len(stderr.data)),
            timed_out=bool(done.get("timed_out")) or reason == "timeout",
            killed=bool(done.get("killed")),
            python_lost=bool(done.get("python_lost")),
            oom=bool(done.get("oom")),
            flooded=reason == "flood" or bool(done.get("flooded")),
            cancelled=reason == "cancel",
        )


class _Interrupt(Exception):
    """A deadline passed or the caller cancelled, while waiting for the runner."""
