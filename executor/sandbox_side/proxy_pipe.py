"""One egress connection inside the sandbox: a client of the HTTP proxy on the sandbox's
loopback, its request head parsed, then a tunnel (CONNECT) or one plain-HTTP request carried to
what the host opened, each direction within its credit window.

Runs INSIDE the sandbox, as the module `sandbox_proxy_pipe`. Standard library only.
"""

import contextlib
import json
import socket

import sandbox_http_answers as answers
import sandbox_http_proxy as http_proxy
from sandbox_frames import send, send_json
from sandbox_pipes import COUNT, Pipe
from sandbox_protocol import (
    CHUNK,
    HEAD_MAX,
    OPEN,
    OPENED,
    REFUSED,
    TO_HOST_CREDIT,
    TO_HOST_DATA,
    TO_HOST_EOF,
    TO_RUNNER_CLOSE,
    TO_RUNNER_CREDIT,
    TO_RUNNER_DATA,
    TO_RUNNER_EOF,
    WINDOW,
)


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
            if self.passed >= WINDOW // 4:  # few credits (each costs both ends); never a stall:
                # what is held back is under the window, so the host can always send more
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
