"""The exec channel of the Kubernetes engine: one exec's websocket (channel protocol v5 or v4,
as `kubernetes.stream.stream` opened it) behind the executor's `ExecChannel`.

Frames are read here, a bounded number per `read()` (the client's own `update()` loops for as
long as frames keep coming, so a flood would never let a deadline be checked, and concatenates
them as it goes). `wait` honours what a TLS socket already decrypted and anything left in the
client's buffers. Every write is bounded by a socket timeout: a pod that stops reading its stdin
costs a few seconds, never a thread. Channels: 0 stdin, 1 stdout, 2 stderr, 3 the exit Status
(JSON), 255 a closed channel (v5).
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import websocket
from kubernetes.stream.ws_client import V5_CHANNEL_PROTOCOL, WSClient

from .base import ChannelClosed, Event, ExecChannel

T = TypeVar("T")

IO_TIMEOUT_S = 5.0  # a write to (or a half-arrived frame from) an exec gives up after this
_STDIN_FRAME = 32 * 1024
_READ_BUDGET = 1 << 20  # bytes one read() takes before returning to its caller


def bounded(fn: Callable[[], T], timeout_s: float, on_late: Callable[[T], None]) -> T:
    """fn() in a helper thread, given up after timeout_s (TimeoutError); a result that arrives
    later goes to on_late. The websocket client has no connect timeout of its own."""
    box: dict[str, Any] = {}
    lock = threading.Lock()
    done = threading.Event()

    def run() -> None:
        try:
            value = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            box["error"] = exc
        else:
            with lock:
                late = box.get("abandoned", False)
                box["value"] = value
            if late:
                on_late(value)
        finally:
            done.set()

    threading.Thread(target=run, name="k8s-exec-connect", daemon=True).start()
    if not done.wait(timeout_s):
        with lock:
            box["abandoned"] = True
            finished = "value" in box
        if not finished:
            raise TimeoutError(f"no answer within {timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def close_quietly(client: WSClient) -> None:
    with contextlib.suppress(websocket.WebSocketException, OSError, ssl.SSLError):
        client.close()


class KubernetesExecChannel(ExecChannel):
    """One exec's websocket: channels 1/2 are output, 3 the exit status, 0 stdin."""

    def __init__(self, client: WSClient, *, io_timeout_s: float = IO_TIMEOUT_S) -> None:
        self._client = client
        self._ws: websocket.WebSocket = client.sock
        self._sock: socket.socket = self._ws.sock
        self._sock.settimeout(io_timeout_s)
        self._io_timeout_s = io_timeout_s
        self._tls = isinstance(self._sock, ssl.SSLSocket)
        self._v5 = client.subprotocol == V5_CHANNEL_PROTOCOL
        self._poll = select.poll()
        self._poll.register(self._sock, select.POLLIN)
        self._polling_write = False
        self._status = bytearray()
        self._early: list[Event] = []
        self._eof = False
        self._closed = False
        self.failure: str | None = None  # the exec could not run (not an exit code)
        # Nothing reads through the client's own buffers, but should anything have, keep it.
        for stream, data in list(getattr(client, "_channels", {}).items()):
            if stream in (1, 2) and data:
                self._early.append((stream, bytes(data)))
            elif stream == 3:
                self._status += data
        getattr(client, "_channels", {}).clear()

    # -- waiting ---------------------------------------------------------------------------

    def _buffered(self) -> bool:
        return bool(self._early) or self._eof or (self._tls and self._sock.pending() > 0)

    def _poll_events(self, timeout_s: float, write: bool, wake: int | None = None) -> int:
        if write != self._polling_write:
            mask = select.POLLIN | (select.POLLOUT if write else 0)
            with contextlib.suppress(OSError, ValueError):
                self._poll.modify(self._sock, mask)
            self._polling_write = write
        try:
            if wake is not None:
                self._poll.register(wake, select.POLLIN)
            try:
                found = self._poll.poll(max(0.0, timeout_s) * 1000)
            finally:
                if wake is not None:
                    self._poll.unregister(wake)
        except (OSError, ValueError, KeyError):  # closed under us
            return select.POLLHUP
        events = 0
        for fd, mask in found:
            if fd != wake:
                events |= mask
        return events

    def wait(
        self, timeout: float, *, write: bool = False, wake: int | None = None
    ) -> tuple[bool, bool]:
        if self._closed:
            return True, False
        if self._buffered():
            writable = write and bool(self._poll_events(0, True) & select.POLLOUT)
            return True, writable
        events = self._poll_events(timeout, write, wake)
        readable = bool(
            events & (select.POLLIN | select.POLLHUP | select.POLLERR | select.POLLNVAL)
        )
        return readable, bool(events & select.POLLOUT)

    def _frame_waiting(self) -> bool:
        if self._tls and self._sock.pending() > 0:
            return True
        return bool(self._poll_events(0, False))

    # -- reading ---------------------------------------------------------------------------

    def read(self) -> list[Event] | None:
        events, self._early = self._early, []
        budget = _READ_BUDGET
        while not self._eof and budget > 0 and self._frame_waiting():
            try:
                opcode, frame = self._ws.recv_data_frame(True)
            except (websocket.WebSocketException, OSError, ssl.SSLError, ValueError):
                self._eof = True  # closed, reset, or a frame that stopped half-way
                break
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self._eof = True
                break
            if opcode not in (websocket.ABNF.OPCODE_BINARY, websocket.ABNF.OPCODE_TEXT):
                continue  # ping / pong
            data = frame.data
            if not data:
                continue
            stream = data[0]
            if stream in (1, 2):
                if len(data) > 1:
                    events.append((stream, bytes(data[1:])))
                    budget -= len(data) - 1
            elif stream == 3:
                self._status += data[1:]
            # 0 (an echo of stdin's opening frame) and 255 (v5: a channel closed) carry nothing
        if self._eof and not events:
            return None
        return events

    # -- writing ---------------------------------------------------------------------------

    def send(self, data: bytes | memoryview) -> int:
        if self._eof or self._closed:
            raise ChannelClosed("the exec has ended")
        chunk = bytes(data[:_STDIN_FRAME])
        try:
            self._client.write_stdin(chunk)
        except (websocket.WebSocketTimeoutException, TimeoutError) as exc:
            self._eof = True  # a frame may be half-written: this stream is done
            raise ChannelClosed(
                f"the sandbox stopped reading its input (nothing taken for "
                f"{self._io_timeout_s:g} s)"
            ) from exc
        except (websocket.WebSocketException, OSError, ssl.SSLError) as exc:
            self._eof = True
            raise ChannelClosed(str(exc)) from exc
        return len(chunk)

    def close_stdin(self) -> bool:
        if not self._v5:  # v4 has no half-close; framed input does not need one
            return False
        with contextlib.suppress(websocket.WebSocketException, OSError, ssl.SSLError):
            self._client.close_channel(0)
        return True

    # -- the end ---------------------------------------------------------------------------

    def exit_code(self) -> int | None:
        deadline = time.monotonic() + 2.0
        while not self._eof and time.monotonic() < deadline:  # the status comes just before EOF
            readable, _ = self.wait(0.05)
            if readable:
                self.read()
        return self._parse_status()

    def _parse_status(self) -> int | None:
        if not self._status:
            return None
        try:
            status = json.loads(bytes(self._status))
        except ValueError:
            return None
        if status.get("status") == "Success":
            return 0
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                with contextlib.suppress(TypeError, ValueError):
                    return int(cause.get("message"))
        self.failure = str(status.get("message") or status.get("reason") or "exec failed")
        return None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.settimeout(0.2)  # a close frame must not wait on a full socket
        close_quietly(self._client)
