"""Pipes inside the sandbox: one accepted connection each, carried to the host as frames: the
common part (Pipe), and a code-mode call (CallPipe); an egress connection is proxy_pipe.py's.

Runs INSIDE the sandbox, as the module `sandbox_pipes`. Standard library only. Everything is
non-blocking and driven by the runner's selector, so a slow client or a flood on one pipe never
holds up a command's output or the other pipes; each direction of a connection has a credit
window (WINDOW), so memory per pipe is bounded on both ends. Socket writes use MSG_NOSIGNAL: the
runner keeps SIGPIPE's default (it must die when the host goes away), a client must not kill it.
"""

import contextlib
import json
import selectors
import socket
import struct

from sandbox_frames import send, send_message
from sandbox_protocol import (
    CALL,
    CALL_ARGS_MAX,
    CALL_RESULT_MAX,
    CHUNK,
    REPLY,
    TO_HOST_CLOSE,
    TO_HOST_PART,
    TO_RUNNER_CLOSE,
    TO_RUNNER_PART,
)

LENGTH = struct.Struct(">I")
COUNT = struct.Struct(">I")


def answer(value):
    body = json.dumps(value).encode()
    return LENGTH.pack(len(body)) + body


class Pipe:
    """One accepted connection. Subclasses react to the socket and to the host's frames."""

    def __init__(self, bridge, pid, sock):
        self.bridge, self.pid, self.sock = bridge, pid, sock
        self.out = bytearray()  # bytes waiting for the client
        self.closing = False  # close once `out` is written
        self.reading = True
        self.closed = False
        self.watching = selectors.EVENT_READ
        sock.setblocking(False)
        bridge.selector.register(sock, selectors.EVENT_READ, self)

    def interest(self):
        """Watch the socket for what the pipe can do now: read (within its credit), write
        (when bytes wait for the client), or nothing (it is then not watched at all, so a
        client with more to say than we may take cannot make the runner spin)."""
        if self.closed:
            return
        events = (selectors.EVENT_READ if self.reading else 0) | (
            selectors.EVENT_WRITE if self.out else 0
        )
        if events == self.watching:
            return
        if not events:
            self.bridge.selector.unregister(self.sock)
        elif not self.watching:
            self.bridge.selector.register(self.sock, events, self)
        else:
            self.bridge.selector.modify(self.sock, events, self)
        self.watching = events

    def ready(self, mask):
        if mask & selectors.EVENT_WRITE and self.out:
            self.flush()
        if not self.closed and mask & selectors.EVENT_READ and self.reading:
            self.readable()
        if not self.closed:
            self.interest()

    def flush(self):
        try:
            sent = self.sock.send(self.out, socket.MSG_NOSIGNAL)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            self.abort("the client went away")
            return 0
        del self.out[:sent]
        if not self.out and self.closing:
            self.close()
        return sent

    def finish(self, data=b""):
        """Say `data` to the client, then close."""
        self.out += data
        self.closing, self.reading = True, False
        if not self.out:
            self.close()

    def abort(self, why):
        self.close(notify=why)

    def close(self, notify=None):
        if self.closed:
            return
        self.closed = True
        if self.watching:
            with contextlib.suppress(KeyError, ValueError):
                self.bridge.selector.unregister(self.sock)
        with contextlib.suppress(OSError):
            self.sock.close()
        self.bridge.pipes.pop(self.pid, None)
        if notify is not None and self.bridge.active:
            send(TO_HOST_CLOSE, self.pid, notify.encode()[:200])

    def readable(self):
        raise NotImplementedError

    def frame(self, kind, payload):
        raise NotImplementedError


class CallPipe(Pipe):
    """One code-mode call: a length-prefixed JSON message in, one answer out."""

    def __init__(self, bridge, pid, sock):
        super().__init__(bridge, pid, sock)
        self.message = bytearray()

    def readable(self):
        try:
            chunk = self.sock.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return self.close()
        if not chunk:
            return self.close()  # the caller gave up before asking
        self.message += chunk
        if len(self.message) < LENGTH.size:
            return
        (length,) = LENGTH.unpack_from(self.message)
        if length > CALL_ARGS_MAX:
            limit = f"{CALL_ARGS_MAX:,}"
            error = (
                f"the call's arguments are {length:,} bytes of JSON, over the {limit}-byte limit"
            )
            return self.finish(answer({"ok": False, "error": error}))
        if len(self.message) - LENGTH.size >= length:
            body = bytes(self.message[LENGTH.size : LENGTH.size + length])
            self.reading = False
            send_message(TO_HOST_PART, CALL, self.pid, body)

    def frame(self, kind, payload):
        if kind == TO_RUNNER_PART:
            if not self.bridge.parts.add(self.pid, payload, CALL_RESULT_MAX + 4096):
                self.finish(answer({"ok": False, "error": "the answer was too large"}))
        elif kind == REPLY:
            body = self.bridge.parts.finish(self.pid, payload, CALL_RESULT_MAX + 4096)
            if body is None:
                return self.finish(answer({"ok": False, "error": "the answer was too large"}))
            self.finish(LENGTH.pack(len(body)) + body)
        elif kind == TO_RUNNER_CLOSE:
            self.finish(answer({"ok": False, "error": payload.decode("utf-8", "replace")}))
