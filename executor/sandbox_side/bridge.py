"""The runner's listeners: a unix socket for code-mode calls ($SANDBOX_BRIDGE) and an HTTP
proxy on the sandbox's loopback for egress ($HTTP_PROXY), and the pipes they accepted.

Runs INSIDE the sandbox, as the module `sandbox_bridge`. Standard library only. Connections are
taken only while a request runs; between requests they are turned away at once with a reason.
"""

import contextlib
import os
import selectors
import socket

import sandbox_http_answers as answers
from sandbox_frames import Parts
from sandbox_pipes import CallPipe, answer
from sandbox_protocol import MAX_PIPES, TO_RUNNER_PART
from sandbox_proxy_pipe import ProxyPipe

IDLE_CALL_ERROR = "no command is running: MCP tools can be called only while a command runs"


class Bridge:
    """The listeners and the open pipes of one runner."""

    def __init__(self, selector, proxy=False):
        self.selector = selector
        self.pipes = {}
        self.parts = Parts()
        self.active = False  # a request runs: pipes may open
        self.next_pid = 1
        folder = f"/tmp/.sandbox-runner-{os.getpid()}"
        os.makedirs(folder, mode=0o700, exist_ok=True)
        self.path = os.path.join(folder, "bridge.sock")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self.calls = self.listen(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), self.path)
        self.proxy_port = 0
        self.proxy = None
        if proxy:
            try:
                self.proxy = self.listen(socket.socket(), ("127.0.0.1", 0))
                self.proxy_port = self.proxy.getsockname()[1]
            except OSError:
                self.proxy = None  # no loopback: egress is off for this sandbox

    def listen(self, sock, address):
        sock.bind(address)
        sock.listen(64)
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, self)
        return sock

    def environment(self):
        """What commands and the kernel need to find the bridge and the proxy."""
        env = {"SANDBOX_BRIDGE": self.path}
        if self.proxy_port:
            url = f"http://127.0.0.1:{self.proxy_port}"
            for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
                env[name] = url
            env["NO_PROXY"] = env["no_proxy"] = "localhost,127.0.0.1,::1"
        return env

    def ready(self, mask, listener):
        """A listener has a connection waiting: take it, or turn it away."""
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError, OSError):
            return
        calls = listener is self.calls
        if not self.active or len(self.pipes) >= MAX_PIPES:
            why = IDLE_CALL_ERROR if not self.active else "too many open calls and connections"
            reply = (
                answer({"ok": False, "error": why})
                if calls
                else answers.response(
                    503, "Sandbox proxy: " + why, "The sandbox proxy: " + why + "."
                )
            )
            with contextlib.suppress(OSError):
                sock.setblocking(False)
                sock.send(reply, socket.MSG_NOSIGNAL)
            sock.close()
            return
        pid, self.next_pid = self.next_pid, self.next_pid + 1
        self.pipes[pid] = (CallPipe if calls else ProxyPipe)(self, pid, sock)

    def frame(self, kind, pid, payload):
        """A frame from the host for a pipe (ignored when the pipe has ended)."""
        pipe = self.pipes.get(pid)
        if pipe is None:
            if kind == TO_RUNNER_PART:
                self.parts.drop(pid)
            return
        pipe.frame(kind, payload)
        pipe.interest()

    def start_request(self):
        self.active = True

    def end_request(self):
        """Close every pipe (their processes are being killed); the host ends its side."""
        self.active = False
        for pipe in list(self.pipes.values()):
            pipe.close()
        self.parts = Parts()
