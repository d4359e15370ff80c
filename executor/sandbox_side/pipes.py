"""Pipes inside the sandbox: one accepted connection each, a code-mode call (CallPipe) or an
egress connection through the HTTP proxy (ProxyPipe), carried to the host as frames.

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

import sandbox_http_answers as answers
import sandbox_http_proxy as http_proxy
from sandbox_frames import send, send_json, send_message
from sandbox_protocol import (
    CALL,
    CALL_ARGS_MAX,
    CALL_RESULT_MAX,
    CHUNK,
    HEAD_MAX,
    OPEN,
    OPENED,
    REFUSED,
    REPLY,
    TO_HOST_CLOSE,
    TO_HOST_CREDIT,
    TO_HOST_DATA,
    TO_HOST_EOF,
    TO_HOST_PART,
    TO_RUNNER_CLOSE,
    TO_RUNNER_CREDIT,
    TO_RUNNER_DATA,
    TO_RUNNER_EOF,
    TO_RUNNER_PART,
    WINDOW,
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


class ProxyPipe(Pipe):
    """One HTTP-proxy connection: the request head, then a tunnel to what the host opened."""

    def __init__(self, bridge, pid, sock):
        super().__init__(bridge, pid, sock)
        self.head = bytearray()
        self.state = "head"  # head -> opening -> open
        self.up = bytearray()  # bytes for the host, sent within credit
        self.credit = WINDOW  # bytes we may still send the host
        self.passed = 0  # bytes written to the client not yet credited to the host
        self.own = 0  # bytes of our own (the tunnel's 200, a rewritten head) not to credit
        self.response = None  # plain HTTP: the response head, until it is complete
        self.client_eof = self.host_eof = False

    def readable(self):
        if self.state == "head":
            return self.read_head()
        room = min(CHUNK, self.credit)
        try:
            chunk = self.sock.recv(room)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return self.abort("the client reset the connection")
        if not chunk:
            self.client_eof, self.reading = True, False
            send(TO_HOST_EOF, self.pid)
            return self.maybe_done()
        self.credit -= len(chunk)
        send(TO_HOST_DATA, self.pid, chunk)
        self.reading = self.credit > 0

    def read_head(self):
        try:
            chunk = self.sock.recv(HEAD_MAX + 1 - len(self.head))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return self.close()
        if not chunk:
            return self.close()
        self.head += chunk
        parsed = http_proxy.parse_head(bytes(self.head))
        if parsed is None:
            return
        if isinstance(parsed, http_proxy.ProxyError):
            return self.finish(answers.error_response(parsed))
        self.state, self.reading = "opening", False
        self.tunnel, self.host, self.port = parsed.tunnel, parsed.host, parsed.port
        self.response = None if parsed.tunnel else bytearray()
        # The rewritten head (plain HTTP), then what the client sent after its head.
        self.up += parsed.head + bytes(self.head[parsed.consumed :])
        mode = "connect" if parsed.tunnel else "http"
        send_json(OPEN, self.pid, {"mode": mode, "host": parsed.host, "port": parsed.port})

    def push_up(self):
        while self.up and self.credit > 0:
            piece = bytes(self.up[: min(CHUNK, self.credit)])
            del self.up[: len(piece)]
            self.credit -= len(piece)
            send(TO_HOST_DATA, self.pid, piece)
        self.reading = self.state == "open" and not self.client_eof and self.credit > 0

    def flush(self):
        sent = super().flush()
        ours = min(sent, self.own)  # the host is credited only for its own bytes
        self.own -= ours
        if sent - ours and self.state == "open":
            self.passed += sent - ours
            if self.passed >= CHUNK or not self.out:
                send(TO_HOST_CREDIT, self.pid, COUNT.pack(self.passed))
                self.passed = 0
            self.maybe_done()
        return sent

    def take_data(self, payload):
        """Bytes from the peer for the client. Plain HTTP: the response head first says
        `Connection: close` (one request per proxy connection)."""
        if self.response is not None:
            self.response += payload
            end = self.response.find(b"\r\n\r\n")
            if end < 0 and len(self.response) <= HEAD_MAX:
                return
            head, rest = bytes(self.response[: end + 4]), bytes(self.response[end + 4 :])
            self.response = None
            new = http_proxy.close_response(head) if end >= 0 else head
            if len(new) >= len(head):
                self.own += len(new) - len(head)
            else:  # fewer bytes will reach the client than came: credit the difference now
                send(TO_HOST_CREDIT, self.pid, COUNT.pack(len(head) - len(new)))
            payload = new + rest
        self.out += payload
        if len(self.out) > WINDOW + CHUNK + HEAD_MAX:  # the host broke the window
            self.abort("the host sent past its window")

    def maybe_done(self):
        if self.closed:
            return
        done = self.client_eof or not self.tunnel  # plain HTTP: one response, then close
        if self.host_eof and done and not self.out and self.response is None:
            self.close(notify="done")
        elif self.host_eof and not self.out and not self.closed:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)

    def frame(self, kind, payload):
        if kind == OPENED and self.state == "opening":
            self.state = "open"
            if self.tunnel:
                self.out += answers.CONNECTED
                self.own = len(answers.CONNECTED)
            self.push_up()
        elif kind == REFUSED and self.state == "opening":
            try:
                why = json.loads(payload)
                status, reason = int(why["status"]), str(why["reason"])
            except (ValueError, KeyError, TypeError):
                status, reason = 403, "refused by the host"
            self.finish(answers.refusal(status, self.host, self.port, reason))
        elif kind == TO_RUNNER_DATA and self.state == "open":
            self.take_data(payload)
        elif kind == TO_RUNNER_CREDIT and len(payload) == COUNT.size:
            self.credit = min(WINDOW, self.credit + COUNT.unpack(payload)[0])
            self.push_up()
        elif kind == TO_RUNNER_EOF:
            self.host_eof = True
            if self.response is not None:  # it ended inside the head: pass on what came
                self.out += self.response
                self.response = None
            self.maybe_done()
        elif kind == TO_RUNNER_CLOSE:
            self.close()
