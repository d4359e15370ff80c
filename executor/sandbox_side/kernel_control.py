"""The runner's handle on the Python kernel (kernel.py): starting it, sending it cells, asking
it to reap, stopping it.

Runs INSIDE the sandbox, as the module `sandbox_kernel_control`. Standard library only.
"""

import contextlib
import os
import select
import signal
import struct
import subprocess
import sys

REAP = 0xFFFFFFFF  # a control "length" that means: collect your dead children

# The kernel reads its own source from its control pipe first (a short `ps` line).
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


class Kernel:
    """One kernel process: `stdout`/`stderr` are its output pipes (non-blocking), `done` the fd
    it answers on ("ok", "error", "reaped N")."""

    def __init__(self, source):
        to_kernel_r, to_kernel_w = os.pipe()
        from_kernel_r, from_kernel_w = os.pipe()
        self.process = subprocess.Popen(
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
        self.control, self.done = to_kernel_w, from_kernel_r
        self.pid = self.process.pid
        self.stdout, self.stderr = self.process.stdout, self.process.stderr
        for stream in (self.stdout, self.stderr):
            os.set_blocking(stream.fileno(), False)
        encoded = source.encode()
        os.write(self.control, struct.pack(">I", len(encoded)) + encoded)

    def run_cell(self, code):
        """Send a cell (raises OSError if the kernel is gone)."""
        encoded = code.encode()
        os.write(self.control, struct.pack(">I", len(encoded)) + encoded)

    def exited(self):
        return self.process.poll() is not None

    def answer(self):
        """The kernel's answer if one is waiting (non-blocking), else b""."""
        os.set_blocking(self.done, False)
        try:
            return os.read(self.done, 64)
        except BlockingIOError:
            return b""

    def reap(self):
        """Ask the kernel to collect its dead children; False if it did not answer."""
        try:
            os.write(self.control, struct.pack(">I", REAP))
            ready, _, _ = select.select([self.done], [], [], 1.0)
            reply = os.read(self.done, 64) if ready else b""
        except OSError:
            reply = b""
        return reply.startswith(b"reaped")

    def threads(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("Threads:"):
                        return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return 1

    def stop(self):
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait()
        for fd in (self.control, self.done):
            with contextlib.suppress(OSError):
                os.close(fd)
        for stream in (self.stdout, self.stderr):
            with contextlib.suppress(OSError):
                stream.close()
