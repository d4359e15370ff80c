"""Sandbox: one session's hardened container, driven synchronously (the docker SDK is synchronous).

Every operation holds the sandbox's lock, so one session never runs two things at once: after each
command every process of the sandbox user is killed, which must not hit a concurrent file write.
`DockerExecutionClient` is the async face of this; nothing here is async.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors

import docker
from settings import ExecutorSettings

from . import _hardening
from ._stream import ExecStream, StreamEnd
from .errors import (
    FileTooLargeError,
    ImageNotFoundError,
    InvalidArgumentError,
    NotARegularFileError,
    PathNotAllowedError,
    QuotaExceededError,
    SandboxCommandError,
    SandboxFileNotFoundError,
    SandboxStartError,
)
from .runner import FILES_SOURCE, OnChunk, RunnerChannel, RunnerError

logger = logging.getLogger(__name__)

_RUNNER_FAILURES_ALLOWED = 3  # after this many, a session uses plain docker exec only
TIMEOUT_EXIT_CODE = 124
KILLED_EXIT_CODE = 137


# Runs the command with a backstop timeout (should the host die mid-call), then kills every
# process of the sandbox user that is left: background jobs, setsid/nohup escapees, daemons.
# `kill` is a bash builtin and needs no fork, so this works even at the pids limit. The OOM
# counter is read with builtins before and after, to say when the kernel killed for memory.
_BASH_WRAPPER = r"""
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
if [ "$_rc" -ge 128 ] && [ "$_o" != "$_before" ]; then
  printf '\n[sandbox: a process was killed: the sandbox ran out of memory (limit %s)]\n' "$3" >&2
fi
exit "$_rc"
"""

KILL_ALL = "for _ in 1 2 3 4 5 6 7 8 9 10 11 12; do kill -9 -1 2>/dev/null || exit 0; done"


def kill_all_processes(client: docker.DockerClient, container_id: str) -> None:
    """SIGKILL every process of the sandbox user, from a detached exec (a bash builtin loop:
    no fork needed, so it works at the pids limit). Raises docker's APIError if it cannot run."""
    exec_id = client.api.exec_create(
        container_id, ["bash", "-c", KILL_ALL], user=_hardening.SANDBOX_USER
    )["Id"]
    client.api.exec_start(exec_id, detach=True)


@dataclass(frozen=True)
class ExecutionResult:
    """What a command did. A non-zero exit code is data, not an error."""

    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False
    duration_s: float = 0.0
    stdout_dropped_bytes: int = 0
    stderr_dropped_bytes: int = 0
    runner: bool = False  # ran through the resident runner (else plain docker exec)
    python_state_lost: bool = False  # the Python interpreter's variables are gone

    def as_tuple(self) -> tuple[int, str, str]:
        return self.exit_code, self.stdout, self.stderr


@dataclass
class _RawExec:
    exit_code: int
    stdout: bytes
    stderr: bytes
    stdout_dropped: int
    stderr_dropped: int
    ended: StreamEnd
    duration_s: float
    notes: list[str]


def _drop_marker(stream: str, dropped: int, limit: int) -> str:
    return (
        f"\n[... {dropped:,} more bytes of {stream} were dropped: output is limited to "
        f"{limit:,} bytes per stream; write big output to a file and read parts of it ...]"
    )


def _human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}".replace(".0 ", " ")
        n /= 1024
    return str(n)


class Sandbox:
    """One session's container: created on first use, restarted when found stopped or gone."""

    def __init__(
        self,
        client: docker.DockerClient,
        spec: ExecutorSettings,
        *,
        user_id: str,
        name: str,
        volume: str,
        labels: dict[str, str],
        tools_path: Path | None,
        skills_path: Path | None,
        container_id: str | None = None,
        claim: Callable[[Sandbox], bool] | None = None,
    ) -> None:
        self.client = client
        self.spec = spec
        self.user_id = user_id
        self.name = name
        self.volume = volume
        self.labels = labels
        self.tools_path = tools_path
        self.skills_path = skills_path
        self.lock = threading.RLock()
        self.last_used = time.monotonic()
        self._container_id = container_id
        self._running = False
        self.stopped_idle = False  # stopped by the idle reaper; started again on next use
        self._claim = claim  # takes a warm-pool container for a session that has none yet
        self._runner: RunnerChannel | None = None
        self._runner_failures = 0
        self._python = "none"  # "none" | "alive" | why it was lost

    # -- container lifecycle -------------------------------------------------------------

    def ensure_running(self) -> str:
        """The container's id, after creating or starting it if needed."""
        if self._container_id and self._running:
            return self._container_id
        api = self.client.api
        claim, self._claim = self._claim, None  # a session claims at most once, ever
        # A session new since the start-up sweep has no container yet (the sweep adopted every
        # existing one), so a pooled container can be taken without asking Docker first.
        if claim is not None and self._container_id is None and claim(self):
            self._running = True
            self.stopped_idle = False
            assert self._container_id is not None
            return self._container_id
        try:
            info = api.inspect_container(self.name)
        except docker.errors.NotFound:
            info = None
        image_id = self._image_id()
        if info is not None and info.get("Image") != image_id:
            logger.info(
                "sandbox %s runs an old image; recreating it (workspace kept)",
                self.name,
            )
            self._remove_container(info["Id"])
            info = None
        try:
            if info is None:
                self._container_id = self._create()
            else:
                self._container_id = info["Id"]
                state = info["State"]
                if state.get("Paused"):
                    api.unpause(self._container_id)
                elif not state.get("Running"):
                    api.start(self._container_id)
        except docker.errors.APIError as exc:
            raise SandboxStartError(
                f"cannot start the sandbox for this session: {exc.explanation or exc}"
            ) from exc
        self._running = True
        self.stopped_idle = False
        return self._container_id

    def is_live(self) -> bool:
        """Whether this session's container is (as far as we know) running."""
        return self._running and not self.stopped_idle

    def attach(
        self, *, name: str, volume: str, container_id: str, runner: RunnerChannel | None = None
    ) -> None:
        """Make an existing container (a claimed pool member) this session's."""
        self.name, self.volume, self._container_id = name, volume, container_id
        if self._runner is not None:
            self._runner.close()
        if runner is not None:
            runner.kill_all = self._kill_quietly
            self._runner = runner

    def _image_id(self) -> str:
        try:
            return self.client.images.get(self.spec.image_name).id
        except docker.errors.ImageNotFound as exc:
            raise ImageNotFoundError(
                f"the sandbox image {self.spec.image_name} does not exist; build it with "
                "`make image` (or `python -m executor.image build`)"
            ) from exc

    def _create(self) -> str:
        try:
            self.client.volumes.get(self.volume)
        except docker.errors.NotFound:
            self.client.volumes.create(name=self.volume, labels=self.labels)
        kwargs = _hardening.container_kwargs(
            self.spec,
            name=self.name,
            volume=self.volume,
            labels=self.labels,
            tools_path=self.tools_path,
            skills_path=self.skills_path,
        )
        started = time.monotonic()
        try:
            container = self.client.containers.run(**kwargs)
        except docker.errors.ImageNotFound as exc:
            raise ImageNotFoundError(
                f"the sandbox image {self.spec.image_name} does not exist; "
                "build it with `make image`"
            ) from exc
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: another process created it first; use theirs
                self._remove_container(self.name)
                raise
            info = self.client.api.inspect_container(self.name)
            if not info["State"].get("Running"):
                self.client.api.start(info["Id"])
            return info["Id"]
        logger.info("sandbox %s created in %.2fs", self.name, time.monotonic() - started)
        return container.id

    def _remove_container(self, ref: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self.client.api.remove_container(ref, force=True)

    def _drop_runner(self, why: str) -> None:
        """Forget the runner (it is gone or untrusted); the kernel's state goes with it."""
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        if self._python == "alive":
            self._python = why

    def stop(self) -> None:
        with self.lock:
            self._drop_runner("the sandbox was stopped")
            self._running = False
            if self._container_id is None:
                return
            try:
                self.client.api.stop(self._container_id, timeout=1)
            except docker.errors.NotFound:
                self._container_id = None

    def remove(self, *, volume: bool = False) -> None:
        with self.lock:
            self._drop_runner("the sandbox was removed")
            self._running = False
            self._remove_container(self._container_id or self.name)
            self._container_id = None
            if volume:
                with contextlib.suppress(docker.errors.NotFound):
                    self.client.api.remove_volume(self.volume, force=True)

    def restart(self) -> None:
        """Kill and start the container: the last resort to stop runaway processes."""
        cid = self._container_id or self.name
        self._running = False
        self._drop_runner("the sandbox was restarted")
        with contextlib.suppress(docker.errors.APIError):
            self.client.api.kill(cid)
        self.ensure_running()

    # -- exec ----------------------------------------------------------------------------

    def _exec_create(self, argv: list[str], stdin: bool) -> str:
        for attempt in (1, 2):
            cid = self.ensure_running()
            try:
                return self.client.api.exec_create(
                    cid, argv, **_hardening.exec_kwargs(stdin=stdin)
                )["Id"]
            except docker.errors.NotFound:
                self._container_id, self._running = None, False  # removed from outside
            except docker.errors.APIError as exc:
                if exc.status_code != 409 or attempt == 2:  # 409: stopped or paused meanwhile
                    raise SandboxStartError(
                        f"cannot run in the sandbox: {exc.explanation or exc}"
                    ) from exc
                self._running = False
        raise SandboxStartError("the sandbox container disappeared twice in a row")

    def exec(
        self,
        argv: list[str],
        *,
        timeout_s: float,
        stdin: bytes | None = None,
        stdout_limit: int,
        stderr_limit: int,
        cancel: threading.Event | None = None,
        flood_limit: int | None = None,
        on_chunk: OnChunk | None = None,
    ) -> _RawExec:
        """Run argv as the sandbox user; on deadline/cancel/flood kill every sandbox process."""
        with self.lock:
            self.last_used = time.monotonic()
            exec_id = self._exec_create(argv, stdin is not None)
            started = time.monotonic()
            sock = self.client.api.exec_start(exec_id, socket=True)
            stream = ExecStream(sock, stdout_limit, stderr_limit, stdin)
            stream.on_chunk = on_chunk
            notes: list[str] = []
            try:
                ended = stream.pump(started + timeout_s, cancel=cancel, flood_limit=flood_limit)
                if ended is not StreamEnd.EOF:
                    self._kill_processes(notes)
                    if stream.pump(time.monotonic() + self.spec.kill_grace_s) is not StreamEnd.EOF:
                        stream.close()
                        logger.warning(
                            "sandbox %s: exec did not end after kill; restarting",
                            self.name,
                        )
                        self.restart()
                        notes.append(
                            "[the sandbox was restarted to stop the command; files in "
                            "/workspace are kept, /tmp was cleared]"
                        )
            finally:
                stream.close()
            exit_code = self._exit_code(exec_id)
            duration = time.monotonic() - started
            if (
                ended is StreamEnd.EOF
                and exit_code == KILLED_EXIT_CODE
                and b"ran out of memory" not in stream.stderr.data[-200:]
                and self._died()
            ):
                notes.append(
                    "[the sandbox container was stopped while the command ran; it starts "
                    "again on the next call and /workspace is kept]"
                )
            self.last_used = time.monotonic()
            return _RawExec(
                exit_code,
                bytes(stream.stdout.data),
                bytes(stream.stderr.data),
                stream.stdout.dropped,
                stream.stderr.dropped,
                ended,
                duration,
                notes,
            )

    def _kill_quietly(self) -> None:
        """Kill every sandbox-user process now (a detached exec), before abandoning a runner."""
        try:
            kill_all_processes(self.client, self.ensure_running())
        except docker.errors.APIError as exc:
            logger.warning("sandbox %s: could not kill processes: %s", self.name, exc)

    def _kill_processes(self, notes: list[str]) -> None:
        """Kill every process of the sandbox user, from a second, detached exec."""
        self._drop_runner("every process in the sandbox was stopped")
        try:
            kill_all_processes(self.client, self.ensure_running())
        except docker.errors.APIError as exc:  # e.g. exec cannot start at the pids limit
            logger.warning("sandbox %s: kill exec failed (%s); restarting", self.name, exc)
            self.restart()
            notes.append(
                "[the sandbox was restarted to stop the command; files in /workspace "
                "are kept, /tmp was cleared]"
            )

    def _exit_code(self, exec_id: str) -> int:
        for _ in range(400):
            try:
                info = self.client.api.exec_inspect(exec_id)
            except docker.errors.NotFound:
                return KILLED_EXIT_CODE
            if not info.get("Running"):
                code = info.get("ExitCode")
                return KILLED_EXIT_CODE if code is None else int(code)
            time.sleep(0.005)
        return KILLED_EXIT_CODE

    def _died(self, wait_s: float = 1.0) -> bool:
        """Whether the container stopped (Docker records it a moment after the exec ends)."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                running = bool(self.client.api.inspect_container(self.name)["State"].get("Running"))
            except docker.errors.NotFound:
                running = False
            if not running:
                self._running = False
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    # -- commands: the runner when it works, plain docker exec otherwise ----------------

    def _channel(self, notes: list[str]) -> RunnerChannel | None:
        """The session's runner, started or restarted as needed; None means use docker exec."""
        if not self.spec.use_runner or self._runner_failures >= _RUNNER_FAILURES_ALLOWED:
            return None
        if self._runner is not None:
            if self._runner.alive():
                return self._runner
            self._drop_runner("the command runner had stopped")
            notes.append(
                "[the command runner had stopped (or said something unasked); it was restarted]"
            )
        for attempt in (1, 2):
            cid = self.ensure_running()
            if self._runner is not None and self._runner.alive():
                return self._runner  # a claimed pool member came with its runner started
            try:
                self._runner = RunnerChannel(
                    self.client,
                    cid,
                    kill_grace_s=self.spec.kill_grace_s,
                    kill_all=self._kill_quietly,
                )
                return self._runner
            except docker.errors.APIError as exc:
                self._running = False  # the container went away: start it and try again
                if attempt == 2:
                    notes.append(f"[the command runner could not start ({exc}); used docker exec]")
            except RunnerError as exc:
                self._runner_failed(exc, notes)
                notes.append("[ran with docker exec instead]")
                return None
        return None

    def _runner_failed(self, exc: RunnerError, notes: list[str]) -> None:
        self._drop_runner("the command runner failed")
        self._runner_failures += 1
        logger.warning("sandbox %s: runner %s (acked=%s)", self.name, exc.reason, exc.acked)
        off = self._runner_failures >= _RUNNER_FAILURES_ALLOWED
        notes.append(
            f"[the command runner {exc.reason}; "
            + (
                "it is off for this session after repeated failures"
                if off
                else "it restarts on the next call"
            )
            + "]"
        )

    def _result(
        self,
        stdout_bytes: bytes,
        stderr_bytes: bytes,
        *,
        exit_code: int,
        ended: StreamEnd,
        timeout_s: float,
        duration_s: float,
        dropped: tuple[int, int],
        notes: list[str],
        runner: bool,
        oom: bool = False,
        python_lost: bool = False,
    ) -> ExecutionResult:
        spec = self.spec
        stdout = stdout_bytes.decode("utf-8", "replace")
        stderr = stderr_bytes.decode("utf-8", "replace")
        if dropped[0]:
            stdout += _drop_marker("stdout", dropped[0], spec.output_limit_bytes)
        if dropped[1]:
            stderr += _drop_marker("stderr", dropped[1], spec.output_limit_bytes)
        tail = []
        timed_out = ended is StreamEnd.DEADLINE
        if timed_out:
            exit_code = TIMEOUT_EXIT_CODE
            tail.append(
                f"[command timed out after {timeout_s:g} s; it and every process it "
                "started were killed]"
            )
        elif ended is StreamEnd.CANCELLED:
            exit_code = KILLED_EXIT_CODE
            tail.append("[command cancelled; it and every process it started were killed]")
        elif ended is StreamEnd.FLOOD:
            exit_code = KILLED_EXIT_CODE
            tail.append(
                f"[command stopped: it wrote more than {spec.output_flood_bytes:,} bytes of output]"
            )
        if oom:
            tail.append(
                "[sandbox: a process was killed: the sandbox ran out of memory (limit "
                f"{_human_bytes(spec.memory_limit_bytes)})]"
            )
        tail += notes
        if tail:
            stderr += ("\n" if stderr and not stderr.endswith("\n") else "") + "\n".join(tail)
        return ExecutionResult(
            exit_code,
            stdout,
            stderr,
            timed_out,
            duration_s,
            dropped[0],
            dropped[1],
            runner,
            python_lost,
        )

    def _via_runner(
        self,
        channel: RunnerChannel,
        body: dict[str, Any],
        timeout_s: float,
        cancel: threading.Event | None,
        on_chunk: OnChunk | None,
        notes: list[str],
    ) -> ExecutionResult:
        spec = self.spec
        started = time.monotonic()
        reply = channel.request(
            {
                **body,
                "timeout": timeout_s,
                "limit": spec.output_limit_bytes,
                "flood": spec.output_flood_bytes,
            },
            timeout_s=timeout_s,
            stdout_limit=spec.output_limit_bytes,
            stderr_limit=spec.output_limit_bytes,
            flood_limit=spec.output_flood_bytes,
            cancel=cancel,
            on_chunk=on_chunk,
        )
        ended = (
            StreamEnd.DEADLINE
            if reply.timed_out
            else StreamEnd.CANCELLED
            if reply.cancelled
            else StreamEnd.FLOOD
            if reply.flooded
            else StreamEnd.EOF
        )
        return self._result(
            reply.stdout,
            reply.stderr,
            exit_code=reply.exit_code,
            ended=ended,
            timeout_s=timeout_s,
            duration_s=time.monotonic() - started,
            dropped=(reply.stdout_dropped, reply.stderr_dropped),
            notes=notes,
            runner=True,
            oom=reply.oom,
            python_lost=reply.python_lost,
        )

    def _stopped_mid_command(
        self, exc: RunnerError, timeout_s: float, started: float, notes: list[str]
    ) -> ExecutionResult:
        """The runner failed after taking the command: stop everything, never run it again."""
        if self._died():
            self._drop_runner("the sandbox container was stopped")
            notes.append(
                "[the sandbox container was stopped while the command ran; it starts "
                "again on the next call and /workspace is kept]"
            )
        else:
            self._runner_failed(exc, notes)
            self._kill_processes(notes)
            notes.append("[the command may have run in part; it was not run again]")
        ended = StreamEnd.DEADLINE if time.monotonic() - started >= timeout_s else StreamEnd.EOF
        return self._result(
            exc.stdout,
            exc.stderr,
            exit_code=KILLED_EXIT_CODE,
            ended=ended,
            timeout_s=timeout_s,
            duration_s=time.monotonic() - started,
            dropped=(0, 0),
            notes=notes,
            runner=True,
        )

    def run_bash(
        self,
        command: str,
        timeout_s: float,
        cancel: threading.Event | None = None,
        on_chunk: OnChunk | None = None,
    ) -> ExecutionResult:
        with self.lock:
            self.last_used = time.monotonic()
            notes: list[str] = []
            for attempt in (1, 2):
                channel = self._channel(notes)
                if channel is None:
                    break
                started = time.monotonic()
                try:
                    return self._via_runner(
                        channel, {"op": "bash", "cmd": command}, timeout_s, cancel, on_chunk, notes
                    )
                except RunnerError as exc:
                    if exc.acked:
                        return self._stopped_mid_command(exc, timeout_s, started, notes)
                    if exc.gone and attempt == 1:  # it had died: the command never started
                        self._drop_runner("the command runner had stopped")
                        notes.append("[the command runner had stopped; it was restarted]")
                        continue
                    self._runner_failed(exc, notes)
                    notes.append("[ran with docker exec instead]")
                    break
            return self._run_bash_exec(command, timeout_s, cancel, on_chunk, notes)

    def _run_bash_exec(
        self,
        command: str,
        timeout_s: float,
        cancel: threading.Event | None,
        on_chunk: OnChunk | None,
        notes: list[str],
    ) -> ExecutionResult:
        spec = self.spec
        self._drop_runner("every process in the sandbox was stopped")  # the wrapper kills all
        backstop = f"{timeout_s + spec.kill_grace_s + 1:g}"
        argv = [
            "bash",
            "-c",
            _BASH_WRAPPER,
            "sandbox",
            command,
            backstop,
            _human_bytes(spec.memory_limit_bytes),
        ]
        raw = self.exec(
            argv,
            timeout_s=timeout_s,
            stdout_limit=spec.output_limit_bytes,
            stderr_limit=spec.output_limit_bytes,
            cancel=cancel,
            flood_limit=spec.output_flood_bytes,
            on_chunk=on_chunk,
        )
        return self._result(
            raw.stdout,
            raw.stderr,
            exit_code=raw.exit_code,
            ended=raw.ended,
            timeout_s=timeout_s,
            duration_s=raw.duration_s,
            dropped=(raw.stdout_dropped, raw.stderr_dropped),
            notes=notes + raw.notes,
            runner=False,
        )

    def run_python(
        self,
        code: str,
        timeout_s: float,
        cancel: threading.Event | None = None,
        on_chunk: OnChunk | None = None,
    ) -> ExecutionResult:
        """Run code in the session's persistent interpreter (variables survive between calls)."""
        with self.lock:
            self.last_used = time.monotonic()
            notes: list[str] = []
            channel = self._channel(notes)
            if self._python not in ("none", "alive"):
                notes.insert(
                    0,
                    f"[Python state was lost earlier ({self._python}); variables, "
                    "imports and definitions from before are gone]",
                )
            result = None
            if channel is not None:
                started = time.monotonic()
                try:
                    result = self._via_runner(
                        channel,
                        {"op": "python", "code": code},
                        timeout_s,
                        cancel,
                        on_chunk,
                        notes,
                    )
                except RunnerError as exc:
                    self._python = "none"
                    if exc.acked:
                        result = self._stopped_mid_command(exc, timeout_s, started, notes)
                        return dataclasses.replace(result, python_state_lost=True)
                    self._runner_failed(exc, notes)
            if result is None:  # no runner: a one-off interpreter through docker exec
                self._python = "none"
                notes.append(
                    "[the Python state could not be kept: the command runner is unavailable, "
                    "so this ran as a one-off `python3 -c` with docker exec]"
                )
                return self._run_bash_exec(
                    f"python3 -c {shlex.quote(code)}", timeout_s, cancel, on_chunk, notes
                )
            if result.python_state_lost:
                self._python = "none"
                why = (
                    "it timed out"
                    if result.timed_out
                    else "it was stopped"
                    if result.exit_code == KILLED_EXIT_CODE
                    else "it crashed"
                )
                return dataclasses.replace(
                    result,
                    stderr=result.stderr
                    + (
                        f"\n[the Python interpreter was restarted because {why}: variables, "
                        "imports and definitions from earlier calls are gone]"
                    ),
                )
            self._python = "alive"
            return result

    def reset_python(self) -> bool:
        """Forget every variable of the session's interpreter; True if there was one."""
        with self.lock:
            had = self._python == "alive"
            self._python = "none"
            if self._runner is not None and self._runner.alive():
                with contextlib.suppress(RunnerError):
                    self._runner.request(
                        {"op": "reset_python"}, timeout_s=10, stdout_limit=1024, stderr_limit=1024
                    )
            return had

    # -- files (all inside the container, as the sandbox user) ---------------------------

    def _file_raw(
        self,
        op: str,
        args: dict[str, Any],
        stdin: bytes | None,
        stdout_limit: int,
        timeout_s: float,
    ) -> _RawExec:
        notes: list[str] = []
        channel = self._channel(notes)
        if channel is not None:
            started = time.monotonic()
            try:
                reply = channel.request(
                    {"op": "file", "name": op, "args": args},
                    stdin=stdin,
                    timeout_s=timeout_s,
                    stdout_limit=stdout_limit + 1,
                    stderr_limit=64 * 1024,
                )
                return _RawExec(
                    reply.exit_code,
                    reply.stdout,
                    reply.stderr,
                    reply.stdout_dropped,
                    reply.stderr_dropped,
                    StreamEnd.EOF,
                    time.monotonic() - started,
                    notes,
                )
            except RunnerError as exc:
                self._runner_failed(exc, notes)
                if exc.acked:
                    self._kill_processes(notes)
                    raise SandboxCommandError(
                        f"{op} of {args.get('path', '/workspace')} failed: the command runner "
                        f"{exc.reason}; try again"
                    ) from exc
        argv = ["python3", "-I", "-S", "-c", FILES_SOURCE, op, json.dumps(args)]
        return self.exec(
            argv,
            timeout_s=timeout_s,
            stdin=stdin,
            stdout_limit=stdout_limit + 1,
            stderr_limit=64 * 1024,
        )

    def file_op(
        self,
        op: str,
        args: dict[str, Any],
        *,
        stdin: bytes | None = None,
        stdout_limit: int,
        timeout_s: float = 120.0,
    ) -> tuple[bytes, dict[str, Any]]:
        with self.lock:
            raw = self._file_raw(op, args, stdin, stdout_limit, timeout_s)
        meta_text = raw.stderr.decode("utf-8", "replace").strip().splitlines()
        try:
            meta = json.loads(meta_text[-1]) if meta_text else {}
        except json.JSONDecodeError:
            meta = {}
        if raw.exit_code == 0 and raw.ended is StreamEnd.EOF:
            return raw.stdout, meta
        path = str(args.get("path", ""))
        kind, message = (
            meta.get("kind"),
            meta.get("message") or "".join(meta_text)[-500:],
        )
        if raw.ended is StreamEnd.DEADLINE:
            raise SandboxCommandError(f"{op} of {path} did not finish within {timeout_s:g} s")
        if raw.exit_code == 153:  # SIGXFSZ: the fsize ulimit
            raise FileTooLargeError(
                f"{path} would be larger than the per-file limit of "
                f"{self.spec.max_file_bytes:,} bytes"
            )
        errors = {
            "not_found": SandboxFileNotFoundError,
            "not_allowed": PathNotAllowedError,
            "not_file": NotARegularFileError,
        }
        if kind in errors:
            raise errors[kind](message, path)
        if kind == "invalid":
            raise InvalidArgumentError(message)
        if kind == "quota":
            raise QuotaExceededError(message)
        if kind == "too_large":
            raise FileTooLargeError(message)
        if kind == "no_space":
            raise QuotaExceededError(f"no space left for {path}: {message}")
        raise SandboxCommandError(f"{op} of {path} failed (exit {raw.exit_code}): {message}")
