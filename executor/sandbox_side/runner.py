"""The resident runner: runs INSIDE the sandbox as the sandbox user, one per session container.

Started by the host over one long-lived exec; the bootstrap (see `__init__.py`) loads the
sandbox-side modules and runs this one. The exec's stdin/stdout then carry the frames of
`protocol.py`. One request runs at a time. When it ends, every other process of the sandbox
user (background jobs, setsid escapees) is killed, except this runner and the Python kernel,
whose variables persist between `python` requests, and every pipe the request opened is closed.
The host trusts none of this: it caps, times and checks it. Standard library only.
"""

import contextlib
import io
import json
import os
import selectors
import signal
import time

import sandbox_files as files
import sandbox_processes as processes
from sandbox_bridge import Bridge
from sandbox_config import CONFIG
from sandbox_frames import FileStdin, FrameWriter, HostReader, send, send_json
from sandbox_hygiene import Hygiene
from sandbox_pipes import Pipe
from sandbox_protocol import (
    ACK,
    CHUNK,
    DONE,
    ERR,
    HELLO,
    KILL,
    OPENED,
    OUT,
    REFUSED,
    REPLY,
    REQUEST,
    TO_RUNNER_CLOSE,
    TO_RUNNER_CREDIT,
    TO_RUNNER_DATA,
    TO_RUNNER_EOF,
    TO_RUNNER_PART,
    VERSION,
)

PIPE_KINDS = {
    REPLY,
    OPENED,
    REFUSED,
    TO_RUNNER_DATA,
    TO_RUNNER_CREDIT,
    TO_RUNNER_EOF,
    TO_RUNNER_CLOSE,
    TO_RUNNER_PART,
}


class Runner(Hygiene):
    def __init__(self):
        self.host = HostReader()
        self.selector = selectors.DefaultSelector()
        self.selector.register(0, selectors.EVENT_READ, "host")
        self.kernel = None
        self.lost_before = ""  # why the kernel was stopped between Python requests
        self.sent = {OUT: 0, ERR: 0}
        self.bridge = Bridge(self.selector, proxy=bool(CONFIG.get("proxy")))
        os.environ.update(self.bridge.environment())  # commands and the kernel inherit it

    # -- requests --------------------------------------------------------------------------

    def serve(self):
        hello = {"version": VERSION, "pid": os.getpid(), "proxy": self.bridge.proxy_port}
        send_json(HELLO, 0, hello)
        while True:
            rid, request = self.next_request()
            send(ACK, rid)
            started = time.monotonic()
            self.tidy()
            piped = request["op"] in ("bash", "python")
            if piped:
                self.bridge.start_request()
            try:
                result = getattr(self, "op_" + request["op"])(rid, request)
            finally:
                self.bridge.end_request()
            result["duration_s"] = round(time.monotonic() - started, 4)
            send_json(DONE, rid, result)

    def next_request(self):
        """Wait for the next REQUEST; meanwhile turn away connections and drop kernel output."""
        while True:
            for kind, rid, payload in self.host.frames():
                if kind == REQUEST:
                    return rid, json.loads(payload)
                # anything else belongs to a request or pipe that already ended
            for key, mask in self.selector.select():
                if key.data == "host":
                    self.host.fill()
                else:
                    self.dispatch(key, mask, {})

    def dispatch(self, key, mask, streams, rid=None, limit=0):
        """One ready file: a pipe, a listener, the request's output, or stray kernel output."""
        if isinstance(key.data, Pipe):
            key.data.ready(mask)
        elif key.data is self.bridge:
            self.bridge.ready(mask, key.fileobj)
        elif key.fileobj in streams:
            self.forward(rid, key.fileobj, key.data, limit)
        elif key.data != "done":  # "done" is read by the request's finished()
            self.read_some(key.fileobj)  # kernel output outside a python request: discard

    def op_reset_python(self, rid, request):
        lost = self.kernel is not None
        self.stop_kernel()
        return {"exit_code": 0, "python_lost": lost}

    def op_file(self, rid, request):
        err = io.StringIO()
        stdin = FileStdin(self.host, rid)
        code = files.run(request["name"], request["args"], stdin, FrameWriter(rid), err)
        if err.getvalue():
            send(ERR, rid, err.getvalue().encode())
        return {"exit_code": code}

    def op_bash(self, rid, request):
        before = processes.oom_kills()
        try:
            proc = self.spawn(["bash", "-c", request["cmd"]])
        except OSError as exc:  # e.g. the pids limit is reached
            self.kill_leftovers()
            send(ERR, rid, f"cannot start the command: {exc.strerror}\n".encode())
            return {"exit_code": 126}
        streams = {proc.stdout: OUT, proc.stderr: ERR}
        for stream, kind in streams.items():
            os.set_blocking(stream.fileno(), False)
            self.selector.register(stream, selectors.EVENT_READ, kind)
        try:  # wake when the command exits, even if a background child keeps its pipes open
            exited = os.pidfd_open(proc.pid)
            self.selector.register(exited, selectors.EVENT_READ, "done")
        except (AttributeError, OSError):
            exited = None
        try:
            outcome = self.pump(rid, request, streams, lambda: proc.poll() is not None)
        finally:
            if exited is not None:
                self.selector.unregister(exited)
                os.close(exited)
        if outcome != "done":
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
        self.kill_leftovers()  # background jobs go too; their pipe ends close
        self.drain(rid, streams, request["limit"])
        for stream in streams:
            self.selector.unregister(stream)
            stream.close()
        code = proc.wait()
        code = 128 - code if code < 0 else code
        result = {
            "exit_code": code,
            "timed_out": outcome == "timeout",
            "killed": outcome == "killed",
            "flooded": outcome == "flood",
            "sent": self.sent,
        }
        if code >= 128 and processes.oom_kills() != before:
            result["oom"] = True
        return result

    def op_python(self, rid, request):
        before, self.lost_before = self.lost_before, ""
        if self.kernel is None:
            self.start_kernel()
        try:
            self.kernel.run_cell(request["code"])
        except OSError:
            self.stop_kernel()
            self.start_kernel()
            self.kernel.run_cell(request["code"])
        kernel = self.kernel
        streams = {kernel.stdout: OUT, kernel.stderr: ERR}
        answer = []

        def finished():
            if kernel.exited():
                return True
            data = kernel.answer()
            if data:
                answer.append(data)
            return bool(data)

        # Wake as soon as the kernel says "done", not at the next tick of the loop.
        self.selector.register(kernel.done, selectors.EVENT_READ, "done")
        try:
            outcome = self.pump(rid, request, streams, finished)
        finally:
            self.selector.unregister(kernel.done)
        self.drain(rid, streams, request["limit"])
        lost = outcome != "done" or not answer
        if lost:
            self.stop_kernel()
        why = ""
        if not self.settled() and self.kernel is not None:
            self.stop_kernel()  # a thread of the cell keeps forking: only stopping it helps
            self.kill_leftovers()
            lost, why = True, "it kept starting processes after the cell ended"
        ok = bool(answer) and answer[0].startswith(b"ok")
        code = 0 if ok else (124 if outcome == "timeout" else 137 if lost and not why else 1)
        result = {
            "exit_code": code,
            "timed_out": outcome == "timeout",
            "killed": outcome == "killed",
            "python_lost": lost,
            "sent": self.sent,
        }
        if why:
            result["lost_reason"] = why
        if before:
            result["lost_before"] = before
        return result

    def pump(self, rid, request, streams, finished):
        """Forward output and pipes until `finished()`, the timeout, or a KILL; say why."""
        deadline = time.monotonic() + request["timeout"]
        self.sent = {OUT: 0, ERR: 0}
        limit = request["limit"]
        while not finished():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            for key, mask in self.selector.select(min(remaining, 0.05)):
                if key.data == "host":
                    self.host.fill()
                    for kind, fid, payload in self.host.frames():
                        if kind == KILL and fid == rid:
                            return "killed"
                        if kind in PIPE_KINDS:
                            self.bridge.frame(kind, fid, payload)
                else:
                    self.dispatch(key, mask, streams, rid, limit)
                    if sum(self.sent.values()) > request.get("flood", 1 << 62):
                        return "flood"
        return "done"

    def read_some(self, stream):
        try:
            return os.read(stream.fileno(), CHUNK)
        except (BlockingIOError, OSError):
            return b""

    def forward(self, rid, stream, kind, limit):
        """Send what the stream has; past the limit, send only how many bytes were dropped."""
        data = self.read_some(stream)
        if not data:
            return data
        room = max(0, limit - self.sent[kind])
        if room:
            send(kind, rid, data[:room])
        self.sent[kind] += len(data)
        return data

    def drain(self, rid, streams, limit):
        for stream, kind in streams.items():
            for _ in range(256):
                if not self.forward(rid, stream, kind, limit):
                    break


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-big file write fails, not the runner
    processes.not_dumpable()
    processes.apply_rlimits()
    Runner().serve()


if __name__ == "__main__":
    main()
