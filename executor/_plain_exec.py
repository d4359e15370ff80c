"""The fallback path: one plain exec per command (no runner), with caps, a deadline and cleanup.

Used when the resident runner is off, failed before taking a request, or failed three times in
a session. On a deadline, a cancel or a flood, every process of the sandbox user is killed from a
second exec; if the first exec still does not end, the container is restarted (files kept).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from settings import ExecutorSettings

from ._container import SandboxContainer
from ._exec import CappedBuffer, OnChunk, Sink, StreamEnd, pump
from ._wording import KILLED_EXIT_CODE, Notes, Notice, Outcome

logger = logging.getLogger(__name__)

OOM_MARKER = b"\n\x1esandbox-oom\x1e\n"

# Runs the command with a backstop timeout (should the host die mid-call), then kills every
# process of the sandbox user that is left: background jobs, setsid/nohup escapees, daemons.
# `kill` is a bash builtin and needs no fork, so this works even at the pids limit. The OOM
# counter is read with builtins before and after; a rise is reported by a marker line at the
# very end of stderr, which the host removes.
BASH_WRAPPER = r"""
_oom() { _o=0; local f k v
  for f in /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control; do
    [ -r "$f" ] || continue
    while read -r k v; do [ "$k" = oom_kill ] && _o=$v; done < "$f"; return 0
  done; }
_oom; _before=$_o
timeout -s KILL "$2" bash -c "$1"
_rc=$?
for _ in 1 2 3 4 5 6 7 8 9 10; do kill -9 -1 2>/dev/null || break; done
_oom
if [ "$_rc" -ge 128 ] && [ "$_o" != "$_before" ]; then printf '\n\036sandbox-oom\036\n' >&2; fi
exit "$_rc"
"""


def bash_argv(command: str, timeout_s: float, spec: ExecutorSettings) -> list[str]:
    backstop = f"{timeout_s + spec.kill_grace_s + 1:g}"
    return ["bash", "-c", BASH_WRAPPER, "sandbox", command, backstop]


def run_plain(
    container: SandboxContainer,
    spec: ExecutorSettings,
    argv: list[str],
    notes: Notes,
    *,
    timeout_s: float,
    kill_processes: Callable[[Notes], None],
    stdout_limit: int,
    stderr_limit: int,
    stdin: bytes | None = None,
    cancel: threading.Event | None = None,
    flood_limit: int | None = None,
    on_chunk: OnChunk | None = None,
    stdout_sink: Sink | None = None,
) -> Outcome:
    """Run argv as the sandbox user; on deadline/cancel/flood kill every sandbox process."""
    channel = container.open_exec(argv, stdin=stdin is not None)
    started = time.monotonic()
    stdout: Sink = stdout_sink if stdout_sink is not None else CappedBuffer(stdout_limit)
    stderr = CappedBuffer(stderr_limit)
    restarted = False
    try:
        ended = pump(
            channel,
            deadline=started + timeout_s,
            stdout=stdout,
            stderr=stderr,
            stdin=stdin,
            cancel=cancel,
            flood_limit=flood_limit,
            on_chunk=on_chunk,
        )
        if ended is not StreamEnd.EOF:
            kill_processes(notes)
            grace = time.monotonic() + spec.kill_grace_s
            if pump(channel, deadline=grace, stdout=stdout, stderr=stderr) is not StreamEnd.EOF:
                channel.close()
                logger.warning(
                    "sandbox %s: exec did not end after kill; restarting", container.name
                )
                container.restart()
                restarted = True
                notes.add(Notice.SANDBOX_RESTARTED)
        exit_code = channel.exit_code()
    finally:
        channel.close()
    exit_code = KILLED_EXIT_CODE if exit_code is None else exit_code
    oom = bytes(stderr.tail).endswith(OOM_MARKER)
    if oom and stderr.data.endswith(OOM_MARKER):
        del stderr.data[-len(OOM_MARKER) :]
    if ended is StreamEnd.EOF and exit_code == KILLED_EXIT_CODE and not oom and container.died():
        notes.add(Notice.CONTAINER_STOPPED)
    return Outcome(
        exit_code=exit_code,
        stdout=bytes(getattr(stdout, "data", b"")),
        stderr=bytes(stderr.data),
        ended=ended,
        duration_s=time.monotonic() - started,
        stdout_dropped=stdout.dropped,
        stderr_dropped=stderr.dropped,
        oom=oom,
        sandbox_restarted=restarted,
    )
