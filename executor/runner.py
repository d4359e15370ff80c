"""Host side of the resident runner: one long-lived exec per session, framed requests over it.

The runner runs as the sandbox user, so sandbox code can kill it, flood through it, or write
frames of its own. Nothing it says is trusted beyond the session it belongs to: frame sizes are
capped, kinds and JSON are checked, output is capped here whatever it claims, and every wait has
a deadline. Any failure raises `RunnerError`; whether the request had been acknowledged tells
the caller if the command may have run (then it is stopped, never re-run) or not (then it runs
through plain `docker exec` instead). The protocol is described in `sandbox_side/protocol.py`.
It travels over any engine's ExecChannel, and needs no half-close: the end of a request's input
is a frame. While a request runs, the pipes its processes open (code-mode calls, egress) go to
the request's `PipeHost` (executor/bridge/), which answers through an outbox this loop sends
from as soon as its wake descriptor fires: a call's answer never waits for a poll tick.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._exec import CappedBuffer, OnChunk, Sink
from .bridge.pipes import PIPE_KINDS, PipeHost, RefusingPipes
from .engines.base import STDOUT, ChannelClosed, Engine, ExecChannel
from .sandbox_side import BOOTSTRAP, runner_bundle, source
from .sandbox_side.protocol import (
    ACK,
    DATA,
    DONE,
    EOF,
    ERR,
    HELLO,
    KILL,
    MAX_FRAME,
    OUT,
    REQUEST,
    VERSION,
)
from .sandbox_side.protocol import HEADER as _HEADER

# The runner's own module; tests replace it with misbehaving ones.
RUNNER_SOURCE = source("runner")
_KNOWN = {OUT, ERR, DONE, HELLO, ACK} | PIPE_KINDS
_ACK_TIMEOUT_S = 5.0
_START_TIMEOUT_S = 10.0
_POLL_S = 0.25
_CHUNK = 256 * 1024


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
    python_lost_reason: str = ""  # why the kernel was stopped in this request, if not obvious
    python_lost_before: str = ""  # why it was stopped since the last Python request


def _int(value: Any, low: int = 0, high: int = 1 << 62) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"not an integer in range: {value!r}")
    return value


class RunnerChannel:
    """One runner process in one container, driven synchronously (callers hold the session lock)."""

    def __init__(
        self,
        engine: Engine,
        container_ref: str,
        *,
        kill_grace_s: float,
        kill_all: Callable[[], None],
        proxy: bool = False,
    ) -> None:
        self.kill_grace_s = kill_grace_s
        self.kill_all = kill_all  # kills every sandbox-user process: used before abandoning
        argv = ["python3", "-I", "-S", "-u", "-c", BOOTSTRAP, "sandbox-runner"]
        self._channel: ExecChannel = engine.open_exec(container_ref, argv, stdin=True)
        self._frames = bytearray()  # the runner's stdout: our protocol
        self._stderr_tail = bytearray()
        self._eof = False
        self._next_id = 1
        self.closed = False
        self.pid: int | None = None
        self.proxy_port = 0  # the runner's HTTP proxy inside the sandbox (0: egress is off)
        try:
            bundle = runner_bundle({"proxy": proxy}, main=RUNNER_SOURCE)
            self._send_raw(bundle, time.monotonic() + _START_TIMEOUT_S)
            kind, _, payload = self._next_frame(time.monotonic() + _START_TIMEOUT_S)
            hello = json.loads(payload)
            if kind != HELLO or hello.get("version") != VERSION:
                raise RunnerError("answered its start with nonsense", acked=False)
            pid, port = hello.get("pid"), hello.get("proxy")
            self.pid = pid if isinstance(pid, int) and not isinstance(pid, bool) else None
            self.proxy_port = _int(port, 0, 65535) if port else 0
        except (RunnerError, _Interrupt, ValueError, AttributeError) as exc:
            self.abandon()
            reason = exc.reason if isinstance(exc, RunnerError) else "answered nonsense or nothing"
            raise RunnerError(
                f"did not start ({reason}){self._diagnostics()}", acked=False
            ) from exc

    # -- plumbing --------------------------------------------------------------------------

    def _diagnostics(self) -> str:
        tail = bytes(self._stderr_tail[-300:]).decode("utf-8", "replace").strip()
        return f": {tail}" if tail else ""

    def _take(self, events: list[tuple[int, bytes]] | None) -> None:
        if events is None:
            self._eof = True
            return
        for stream, data in events:
            if stream == STDOUT:
                self._frames += data
            else:
                self._stderr_tail = (self._stderr_tail + data)[-4096:]

    def alive(self) -> bool:
        """False when the runner is gone, or has said something between requests."""
        if self.closed or self._eof:
            return False
        readable, _ = self._channel.wait(0)
        if readable:
            self._take(self._channel.read())
        return not self._eof and not self._frames  # unsolicited output: not to be trusted

    def close(self) -> None:
        self.closed = True
        self._channel.close()

    def abandon(self) -> None:
        """Stop using a misbehaving runner without wedging the container: kill it, drain its
        stream to the end, then close (an undrained, unclosed exec stream blocks later execs)."""
        if self.closed:
            return
        if not self._eof:
            self.kill_all()
            deadline = time.monotonic() + self.kill_grace_s
            while not self._eof and time.monotonic() < deadline:
                readable, _ = self._channel.wait(0.1)
                if readable and self._channel.read() is None:
                    self._eof = True
        self.close()

    def _send(self, kind: int, rid: int, payload: bytes, deadline: float) -> None:
        self._send_raw(_HEADER.pack(kind, rid, len(payload)) + payload, deadline, kind != REQUEST)

    def _send_raw(self, raw: bytes, deadline: float, acked: bool = False) -> None:
        data = memoryview(raw)
        while data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RunnerError("stopped reading its input", acked=acked)
            readable, writable = self._channel.wait(min(remaining, _POLL_S), write=True)
            if readable:  # keep reading while we write, so neither side blocks the other
                self._take(self._channel.read())
                if self._eof:
                    raise RunnerError("is gone (its output ended)", acked=acked, gone=True)
            if not writable:
                continue
            try:
                data = data[self._channel.send(data) :]
            except ChannelClosed as exc:
                raise RunnerError(f"is gone ({exc})", acked=acked, gone=True) from exc

    def _next_frame(
        self,
        deadline: float,
        cancel: threading.Event | None = None,
        pipes: PipeHost | None = None,
    ) -> tuple[int, int, bytes]:
        """The next complete frame, or _Interrupt("cancel"/"deadline"). While waiting, what
        `pipes` has queued for the runner is sent as soon as it is there."""
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
            wake = None
            if pipes is not None:
                for kind, fid, payload in pipes.outgoing():
                    self._send(kind, fid, payload, time.monotonic() + self.kill_grace_s)
                wake = pipes.wake_fd
            readable, _ = self._channel.wait(min(remaining, _POLL_S), wake=wake)
            if readable:
                self._take(self._channel.read())

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
        stdout_sink: Sink | None = None,
        pipes: PipeHost | None = None,
    ) -> RunnerResult:
        """Run one request; its output goes to capped buffers (or `stdout_sink`, e.g. a file),
        the pipes its processes open to `pipes` (none given: every one is refused)."""
        pipes = pipes if pipes is not None else RefusingPipes()
        rid = self._next_id
        self._next_id += 1
        stdout: Sink = stdout_sink if stdout_sink is not None else CappedBuffer(stdout_limit)
        stderr = CappedBuffer(stderr_limit)
        started = time.monotonic()
        self._send(REQUEST, rid, json.dumps(body).encode(), started + _ACK_TIMEOUT_S)
        if stdin is not None:
            for offset in range(0, len(stdin), _CHUNK):
                self._send(DATA, rid, stdin[offset : offset + _CHUNK], started + timeout_s)
            self._send(EOF, rid, b"", started + timeout_s)
        acked, received = False, 0
        stop: str | None = None  # why we told the runner to kill: timeout, cancel or flood
        deadline = started + _ACK_TIMEOUT_S
        try:
            while True:
                try:
                    kind, frame_rid, payload = self._next_frame(
                        deadline, cancel if stop is None else None, pipes
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
                if kind in PIPE_KINDS:
                    if not acked:
                        raise RunnerError("answered a request it had not taken", acked=False)
                    if stop is None:  # once told to stop, its pipes are being closed
                        pipes.received(kind, frame_rid, payload)
                    continue
                if kind in (OUT, ERR):
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
            exc.stdout, exc.stderr = bytes(getattr(stdout, "data", b"")), bytes(stderr.data)
            if exc.gone:
                self.close()
            else:
                self.abandon()
            raise
        finally:
            pipes.end()

    def _kill_request(self, rid: int) -> None:
        with contextlib.suppress(RunnerError):  # if it cannot even be told, the deadline decides
            self._send(KILL, rid, b"", time.monotonic() + self.kill_grace_s)

    def _result(
        self, payload: bytes, stdout: Sink, stderr: CappedBuffer, reason: str
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
            stdout=bytes(getattr(stdout, "data", b"")),
            stderr=bytes(stderr.data),
            stdout_dropped=max(stdout.dropped, wrote_out - stdout.kept()),
            stderr_dropped=max(stderr.dropped, wrote_err - stderr.kept()),
            timed_out=bool(done.get("timed_out")) or reason == "timeout",
            killed=bool(done.get("killed")),
            python_lost=bool(done.get("python_lost")),
            oom=bool(done.get("oom")),
            flooded=reason == "flood" or bool(done.get("flooded")),
            cancelled=reason == "cancel",
            python_lost_reason=str(done.get("lost_reason") or "")[:200],
            python_lost_before=str(done.get("lost_before") or "")[:200],
        )


class _Interrupt(Exception):
    """A deadline passed or the caller cancelled, while waiting for the runner."""
