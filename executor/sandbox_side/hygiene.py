"""Keeping a sandbox clean between requests: killing what a request left behind, starting
commands at the pids limit, and the life of the Python kernel (whose state must survive the
sweeps). A mixin of the runner (runner.py), which holds the selector and the kernel.

Runs INSIDE the sandbox, as the module `sandbox_hygiene`. Standard library only.
"""

import os
import selectors
import subprocess
import time

import sandbox_processes as processes
from sandbox_config import KERNEL_SOURCE
from sandbox_kernel_control import Kernel
from sandbox_protocol import ERR, OUT


class Hygiene:
    selector: selectors.BaseSelector
    kernel: "Kernel | None"
    lost_before: str

    def keep(self):
        # PID 1 too: under Kubernetes it is the sandbox user's, and no signal from inside its
        # pid namespace can kill it, so counting it would make every sweep run to the end.
        return {1, os.getpid(), self.kernel.pid if self.kernel else -1}

    def kill_leftovers(self):
        """Kill every process but this runner and the kernel; collect the dead (the kernel's
        through it). False if new processes kept appearing."""
        converged, touched = processes.kill_all_but(self.keep())
        if self.kernel is not None and touched and not self.kernel.reap():
            self.lose_kernel("it stopped answering")
        return converged

    def settled(self):
        """Kill what the cell left; if the kernel still runs threads of the cell, watch a
        moment longer: a thread that keeps starting processes would refill the pids limit."""
        if not self.kill_leftovers():
            return False
        if self.kernel is None or self.kernel.threads() <= 1:
            return True
        time.sleep(0.015)  # costs only while a cell's thread lives on
        return not processes.scan(self.keep())[0]

    def tidy(self):
        """Before a request: clean up what appeared since the last one (a kernel thread that
        forks, processes left at the pids limit), so the session recovers by itself."""
        alive, zombies = processes.scan(self.keep())
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
            self.kernel.stop()
            self.kernel = None

    def start_kernel(self):
        self.kernel = Kernel(KERNEL_SOURCE)
        for stream, kind in ((self.kernel.stdout, OUT), (self.kernel.stderr, ERR)):
            self.selector.register(stream, selectors.EVENT_READ, kind)

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
