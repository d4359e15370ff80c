"""The resident runner: runs INSIDE the sandbox as the sandbox user, one per session container.

Started by the host over one long-lived `docker exec` (`python3 -I -S -u -c <bootstrap>`; the
bootstrap reads this source, its end of the frame protocol (`_runner_frames.py`), the files
helper and the kernel from stdin), whose stdin/stdout then carry this protocol. Standard
library only.

Protocol: every message, both ways, is a frame: a 9-byte header `>BII` (kind, request id,
payload length) and the payload. Host -> runner:
  REQUEST (1)  JSON: {"op": "bash", "cmd", "timeout", "limit", "flood"} | {"op": "python", "code",
               "timeout", "limit"} | {"op": "reset_python"} | {"op": "file", "name", "args"}
  KILL    (2)  kill the running request's processes (payload empty)
  DATA    (3)  stdin bytes of a file request;  EOF (4) ends them
Runner -> host:
  HELLO (13)   JSON {"version": 1} once at start;   ACK (14) a request is about to run
  OUT (10) / ERR (11)  output bytes of the request;  DONE (12) JSON {"exit_code", "timed_out",
               "killed", "python_lost", "duration_s"} ends it.
One request runs at a time. When it ends, every other process of the sandbox user (background
jobs, setsid escapees) is killed, except this runner and the Python kernel, whose variables
persist between `python` requests. The host trusts none of this: it caps, times and checks it.
"""

import contextlib
import io
import json
import os
import resource
import select
import selectors
import signal
import struct
import subprocess
import sys
import time
from operator import itemgetter

REAP = 0xFFFFFFFF  # a kernel control "length" that means: collect your dead children

# SOURCES is set by the host's bootstrap (runner.py): this source, the frame protocol
# (_runner_frames.py), the files helper and the kernel.
FRAMES_SOURCE, FILES_SOURCE, KERNEL_SOURCE = SOURCES[1:4]  # noqa: F821
frames = {"__name__": "sandbox_runner_frames"}
exec(compile(FRAMES_SOURCE, "sandbox_runner_frames", "exec"), frames)
REQUEST, KILL, DATA, OUT, ERR, DONE, HELLO, ACK, CHUNK = itemgetter(
    "REQUEST", "KILL", "DATA", "OUT", "ERR", "DONE", "HELLO", "ACK", "CHUNK"
)(frames)
send, send_json, HostReader, FileStdin, FrameWriter = itemgetter(
    "send", "send_json", "HostReader", "FileStdin", "FrameWriter"
)(frames)

# The kernel reads its own source from its control pipe first (a short `ps` line again).
KERNEL_BOOT = (
    "import os,struct,sys\n"
    "def r(n):\n"
    " b=b''\n"
    " while len(b)<n:\n"
    "  c=os.read(int(sys.argv[1]),n-len(b))\n"
    "  if not c: raise SystemExit(1)\n"
    "  b+=c\n"
    " return b\n"
    "exec(compile(r(struct.unpack('>I',r(4))[0]).decode(),'sandbox-kernel','exec'),"
    "{'__name__':'__main__'})\n"
)
files = {"__name__": "sandbox_files"}
exec(compile(FILES_SOURCE, "sandbox_files", "exec"), files)


def oom_kills():
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return 0


class Runner:
    def __init__(self):
        self.host = HostReader()
        self.selector = selectors.DefaultSelector()
        self.selector.register(0, selectors.EVENT_READ, "host")
        self.kernel = None
        self.lost_before = ""  # why the kernel was stopped between Python requests
        self.me = os.getuid()

    # -- process hygiene -------------------------------------------------------------------

    def scan(self):
        """Pids of the sandbox user's processes, except this runner and the kernel: (alive,
        zombies). Zombies cannot be killed, only collected by their parent."""
        # PID 1 too: under Kubernetes it is the sandbox user's, and no signal from inside its
        # pid namespace can kill it, so counting it would make every sweep run to the end.
        keep = {1, os.getpid(), self.kernel.pid if self.kernel else -1}
        alive, zombies = [], []
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in keep:
                continue
            try:
                if os.stat(f"/proc/{name}").st_uid != self.me:
                    continue
                with open(f"/proc/{name}/stat", "rb") as f:
                    state = f.read().rpartition(b")")[2][1:2]
            except OSError:
                continue
            (zombies if state == b"Z" else alive).append(int(name))
        return alive, zombies

    def kill_leftovers(self):
        """SIGKILL every process of the sandbox user but this runner and the kernel, then collect
        the dead (ours here, the kernel's through it). False if new processes kept appearing:
        some code (a thread of the kernel) is still starting them."""
        killed, late, rounds = set(), 0, 0
        deadline = time.monotonic() + 1.0
        while True:
            alive, zombies = self.scan()
            if not alive:
                converged = True
                break
            new = [pid for pid in alive if pid not in killed]
            for pid in alive:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            killed.update(alive)
            rounds += 1
            late += 1 if new and rounds > 3 else 0
            if late >= 3 or time.monotonic() > deadline:
                converged = False
                break
            if not new:
                time.sleep(0.001)  # only dying processes are left: give them a moment
        for _ in range(4096):  # reap our own children (bash, kernel) so no zombies pile up
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        if self.kernel is not None and (zombies or killed):
            self.reap_kernel()
        return converged

    def settled(self):
        """Kill what the cell left; if the kernel still runs threads of the cell, watch a
        moment longer: a thread that keeps starting processes would refill the pids limit."""
        if not self.kill_leftovers():
            return False
        if self.kernel is None or self.kernel_threads() <= 1:
            return True
        time.sleep(0.015)  # costs only while a cell's thread lives on
        return not self.scan()[0]

    def kernel_threads(self):
        try:
            with open(f"/proc/{self.kernel.pid}/status") as f:
                for line in f:
                    if line.startswith("Threads:"):
                        return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return 1

    def reap_kernel(self):
        """Ask the kernel to collect its dead children; stop it if it does not answer."""
        try:
            os.write(self.kernel_control, struct.pack(">I", REAP))
            ready, _, _ = select.select([self.kernel_done], [], [], 1.0)
            reply = os.read(self.kernel_done, 64) if ready else b""
        except OSError:
            reply = b""
        if not reply.startswith(b"reaped"):
            self.lose_kernel("it stopped answering")

    def tidy(self):
        """Before a request: clean up what appeared since the last one (a kernel thread that
        forks, processes left at the pids limit), so the session recovers by itself."""
        alive, zombies = self.scan()
        if (alive or zombies) and not self.kill_leftovers() and self.kernel is not None:
            self.lose_kernel("it kept starting processes after its cell ended")
            self.kill_leftovers()

    def lose_kernel(self, why):
        """Stop the kernel outside a Python request; the next one reports that state was lost."""
        self.stop_kernel()
        self.lost_before = why

    def stop_kernel(self):
        if self.kernel is not None:
            for stream in (self.kernel.stdout, self.kernel.stderr):
                self.selector.unregister(stream)
            with contextlib.suppress(OSError):
                os.killpg(self.kernel.pid, signal.SIGKILL)
            self.kernel.wait()
            os.close(self.kernel_control)
            os.close(self.kernel_done)
            self.kernel = None

    def start_kernel(self):
        to_kernel_r, to_kernel_w = os.pipe()
        from_kernel_r, from_kernel_w = os.pipe()
        self.kernel = subprocess.Popen(
            [
                sys.executable,
                "-u",
                "-c",
                KERNEL_BOOT,
                str(to_kernel_r),
                str(from_kernel_w),
                "sandbox-kernel",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(to_kernel_r, from_kernel_w),
            start_new_session=True,
        )
        os.close(to_kernel_r)
        os.close(from_kernel_w)
        self.kernel_control, self.kernel_done = to_kernel_w, from_kernel_r
        source = KERNEL_SOURCE.encode()
        os.write(self.kernel_control, struct.pack(">I", len(source)) + source)
        for stream, kind in ((self.kernel.stdout, OUT), (self.kernel.stderr, ERR)):
            os.set_blocking(stream.fileno(), False)
            self.selector.register(stream, selectors.EVENT_READ, kind)

    # -- requests --------------------------------------------------------------------------

    def serve(self):
        send_json(HELLO, 0, {"version": 1, "pid": os.getpid()})
        while True:
            kind, rid, payload = self.host.next_frame()
            if kind != REQUEST:
                continue  # a KILL or DATA for a request that already ended
            request = json.loads(payload)
            send(ACK, rid)
            started = time.monotonic()
            self.tidy()
            result = getattr(self, "op_" + request["op"])(rid, request)
            result["duration_s"] = round(time.monotonic() - started, 4)
            send_json(DONE, rid, result)

    def op_reset_python(self, rid, request):
        lost = self.kernel is not None
        self.stop_kernel()
        return {"exit_code": 0, "python_lost": lost}

    def op_file(self, rid, request):
        err = io.StringIO()
        code = files["run"](
            request["name"], request["args"], FileStdin(self.host, rid), FrameWriter(rid), err
        )
        if err.getvalue():
            send(ERR, rid, err.getvalue().encode())
        return {"exit_code": code}

    def spawn(self, argv):
        """Start a command; at the pids limit, clean up (stopping the kernel if its processes
        are what fills it) and try again, so a full session recovers by itself."""
        for attempt in range(3):
            try:
                return subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                )
            except OSError:
                if attempt == 2:
                    raise
                self.kill_leftovers()
                if attempt == 1 and self.kernel is not None:
                    self.lose_kernel("the sandbox ran out of processes")
        raise AssertionError("unreachable")

    def op_bash(self, rid, request):
        before = oom_kills()
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
        if code >= 128 and oom_kills() != before:
            result["oom"] = True
        return result

    def op_python(self, rid, request):
        before, self.lost_before = self.lost_before, ""
        if self.kernel is None:
            self.start_kernel()
        code = request["code"].encode()
        try:
            os.write(self.kernel_control, struct.pack(">I", len(code)) + code)
        except OSError:
            self.stop_kernel()
            self.start_kernel()
            os.write(self.kernel_control, struct.pack(">I", len(code)) + code)
        streams = {self.kernel.stdout: OUT, self.kernel.stderr: ERR}
        answer = []

        def finished():
            if self.kernel.poll() is not None:
                return True
            try:
                data = os.read(self.kernel_done, 64)
            except BlockingIOError:
                return False
            answer.append(data)
            return True

        os.set_blocking(self.kernel_done, False)
        # Wake as soon as the kernel says "done", not at the next tick of the loop.
        self.selector.register(self.kernel_done, selectors.EVENT_READ, "done")
        try:
            outcome = self.pump(rid, request, streams, finished)
        finally:
            self.selector.unregister(self.kernel_done)
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
        """Forward output until `finished()`, the timeout, or a KILL; return why it stopped."""
        deadline = time.monotonic() + request["timeout"]
        self.sent = {OUT: 0, ERR: 0}
        while not finished():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            for key, _ in self.selector.select(min(remaining, 0.05)):
                if key.data == "host":
                    self.host.fill()
                    for kind, frame_rid, _ in self.host.frames():
                        if kind == KILL and frame_rid == rid:
                            return "killed"
                elif key.data == "done":
                    pass  # finished() reads it
                elif key.fileobj in streams:
                    self.forward(rid, key.fileobj, key.data, request["limit"])
                    if sum(self.sent.values()) > request.get("flood", 1 << 62):
                        return "flood"
                else:  # kernel output outside a python request: discard
                    self.read_some(key.fileobj)
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


def apply_rlimits():
    """Limits the engine could not set on the container (Kubernetes has no ulimits), given as
    SANDBOX_RLIMITS="fsize=N,nofile=N,core=0": set on this runner, so every command and the
    kernel it starts inherit them (soft = hard, so sandbox code cannot raise them). Absent
    under Docker, whose ulimits already apply to every process."""
    for item in filter(None, os.environ.pop("SANDBOX_RLIMITS", "").split(",")):
        name, _, value = item.partition("=")
        try:
            which = getattr(resource, "RLIMIT_" + name.strip().upper())
            _, hard = resource.getrlimit(which)
            limit = int(value)
            if hard != resource.RLIM_INFINITY:
                limit = min(limit, hard)
            resource.setrlimit(which, (limit, limit))
        except (AttributeError, ValueError, OSError):
            pass


def not_dumpable():
    """Same-uid sandbox code may kill this process, but not ptrace it or open its pipes."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (ImportError, OSError, AttributeError):
        pass


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-big file write fails, not the runner
    not_dumpable()
    apply_rlimits()
    Runner().serve()
