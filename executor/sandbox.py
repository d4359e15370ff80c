"""Sandbox: one session's commands, Python and file operations, driven synchronously.

Every operation holds the sandbox's lock, so one session never runs two things at once (after
each command every process of the sandbox user is killed, which must not hit a concurrent file
write). Each operation goes through one attempt policy, `_attempt`:

- the resident runner first;
- a runner failure BEFORE it acknowledged the request: the request never started, so it runs
  on a fresh runner if the old one was simply gone, otherwise as a plain exec;
- a failure AFTER the acknowledgement: the request may have run, so everything is stopped and
  it is never run twice;
- after three runner failures a session stays on plain exec.

`DockerExecutionClient` is the async face of this; nothing here is async.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shlex
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from settings import ExecutorSettings

from ._container import SandboxContainer
from ._exec import OnChunk, Sink, StreamEnd
from ._file_results import file_error, file_meta
from ._plain_exec import bash_argv, run_plain
from ._runner_slot import PythonState, RunnerSlot
from ._wording import KILLED_EXIT_CODE, Notes, Notice, Outcome, build_result, python_lost_reason
from .bridge.contracts import CallContext
from .bridge.session import BridgeServices, RequestPipes
from .errors import EngineError, ExecutorError, SandboxCommandError
from .keys import split_key
from .results import ExecutionResult
from .runner import RunnerChannel, RunnerError, RunnerResult
from .sandbox_side import FILES_SCRIPT, source

logger = logging.getLogger(__name__)

T = TypeVar("T")
_FILE_STDERR_LIMIT = 64 * 1024


class Sandbox:
    """One session: its container, its runner and its Python interpreter."""

    def __init__(
        self,
        container: SandboxContainer,
        spec: ExecutorSettings,
        exec_word: str,
        services: BridgeServices | None = None,
    ):
        self.container = container
        self.spec = spec
        self.exec_word = exec_word  # how a plain exec is named to users ("docker exec")
        self.services = services  # code mode and egress for this sandbox's commands
        self.lock = threading.RLock()
        self.last_used = time.time()
        proxy = services is not None and services.allowlist.enabled
        self.slot = RunnerSlot(container, spec, self._kill_quietly, proxy)
        self._warming = False  # a runner is being started ahead, outside the lock
        self._tree: tuple[int, str] | None = None  # (container start, version) in /tools/mcp
        # Code mode's modules go to /tools/mcp, which the engines mount where tools/ has it.
        tools = services.tools if services is not None else None
        mount = spec.tools_path is not None and (spec.tools_path / "mcp").is_dir()
        self._tools = tools if mount else None

    def stop(self) -> None:
        """Stop the container (files kept); the next operation starts it again."""
        with self.lock:
            self.slot.drop("the sandbox was stopped")
            self.container.stop()

    def remove(self, *, volume: bool = False) -> None:
        with self.lock:
            self.slot.drop("the sandbox was removed")
            self.container.remove(volume=volume)

    # -- the one attempt policy -------------------------------------------------------------

    def _attempt(
        self,
        notes: Notes,
        *,
        via_runner: Callable[[RunnerChannel], T],
        via_exec: Callable[[], T],
        after_ack: Callable[[RunnerError], T],
        cold_exec: bool = False,
    ) -> T:
        if cold_exec and self.slot.runner is None and self.spec.use_runner:
            # A container just made amid a crowd of new sessions: one plain exec answers sooner
            # than starting the runner (a Python interpreter) first, and spares the others that
            # CPU. The runner starts once the crowd has passed, for the commands that follow.
            self.container.ensure_running()
            # Until the runner started ahead is ready, commands do not wait for it either.
            if self.container.fresh or self._warming:
                first, self.container.fresh = self.container.fresh, False
                try:
                    return via_exec()
                finally:
                    if first:
                        self._warm_runner_later()
        for attempt in (1, 2):
            channel = self.slot.get(notes)
            if channel is None:
                break
            try:
                return via_runner(channel)
            except RunnerError as exc:
                if exc.acked:
                    return after_ack(exc)
                if exc.gone and attempt == 1:  # it had died: the request never started
                    self.slot.drop("the command runner had stopped")
                    notes.add(Notice.RUNNER_RESTARTED)
                    continue
                self.slot.failed(exc, notes)
                notes.add(Notice.PLAIN_EXEC)
                break
        return via_exec()

    def _warm_runner_later(self) -> None:
        self._warming = True

        def warm() -> None:
            try:
                # A few at a time (a crowd's containers are still being made), and for a
                # moment not at all while this very crowd is starting.
                self.container.creations.wait_quiet(timeout_s=1.0)
                with self.container.creations.warming():
                    runner = self.slot.start_ahead()
                with self.lock:
                    self.slot.take_ahead(runner)
            finally:
                self._warming = False

        threading.Thread(target=warm, name="runner-warm-up", daemon=True).start()

    @contextlib.contextmanager
    def _using(self) -> Iterator[Notes]:
        with self.lock:
            self.last_used = time.time()
            try:
                yield Notes(self.exec_word)
            finally:
                self.last_used = time.time()

    def _kill_quietly(self) -> None:
        """Kill every sandbox-user process now, before abandoning a runner."""
        try:
            self.container.kill_all()
        except EngineError as exc:
            logger.warning("sandbox %s: could not kill processes: %s", self.container.name, exc)

    def _kill_processes(self, notes: Notes) -> None:
        """Kill every process of the sandbox user; restart the container if that cannot run."""
        self.slot.drop("every process in the sandbox was stopped")
        try:
            self.container.kill_all()
        except EngineError as exc:  # e.g. the exec cannot start at the pids limit
            logger.warning("sandbox %s: kill failed (%s); restarting", self.container.name, exc)
            self.container.restart()
            notes.add(Notice.SANDBOX_RESTARTED)

    def _stopped_mid_request(self, exc: RunnerError, started: float, notes: Notes) -> Outcome:
        """The runner failed after taking the request: stop everything, never run it again."""
        if self.container.died():
            self.slot.drop("the sandbox container was stopped")
            notes.add(Notice.CONTAINER_STOPPED)
        else:
            self.slot.failed(exc, notes)
            self._kill_processes(notes)
            notes.add(Notice.NOT_RERUN)
        return Outcome(
            KILLED_EXIT_CODE, exc.stdout, exc.stderr, StreamEnd.EOF, time.monotonic() - started
        )

    # -- requests ---------------------------------------------------------------------------

    def _command(
        self,
        channel: RunnerChannel,
        body: dict[str, Any],
        timeout_s: float,
        cancel: threading.Event | None,
        on_chunk: OnChunk | None,
        tags: dict[str, str] | None = None,
    ) -> Outcome:
        spec = self.spec
        started = time.monotonic()
        limits = {"limit": spec.output_limit_bytes, "flood": spec.output_flood_bytes}
        pipes = None
        if self.services is not None:
            owner, session = split_key(self.container.key)
            context = CallContext(self.container.key, owner, session)
            pipes = RequestPipes(self.services, context, tags)
        reply = channel.request(
            {**body, "timeout": timeout_s, **limits},
            timeout_s=timeout_s,
            stdout_limit=spec.output_limit_bytes,
            stderr_limit=spec.output_limit_bytes,
            flood_limit=spec.output_flood_bytes,
            cancel=cancel,
            on_chunk=on_chunk,
            pipes=pipes,
        )
        outcome = _outcome(reply, time.monotonic() - started)
        if pipes is not None:
            outcome.tool_calls = tuple(pipes.records.calls)
            outcome.egress = tuple(pipes.records.connections)
        return outcome

    def _install_tree(self, notes: Notes) -> None:
        """Before a command: make /tools/mcp hold this user's code-mode modules, when they
        changed or the container started since they were installed (its tmpfs was emptied)."""
        if self._tools is None:
            return
        owner, _ = split_key(self.container.key)
        tree = self._tools.tree(owner)
        if self._tree == (self.container.starts, tree.version) and self.container.running:
            return
        files = {**tree.files, "_runtime.py": source("mcp_runtime")}
        payload = json.dumps(files).encode()
        try:
            self.file_op(
                "install_tree",
                {"size": len(payload)},
                stdin=payload,
                stdout_limit=1024,
                cold_exec=True,
            )
        except ExecutorError as exc:
            notes.add(Notice.TOOLS_NOT_INSTALLED, reason=str(exc))
            return
        self._tree = (self.container.starts, tree.version)

    def _result(self, outcome: Outcome, notes: Notes, timeout_s: float) -> ExecutionResult:
        spec = self.spec
        return build_result(
            outcome,
            notes,
            timeout_s=timeout_s,
            output_limit=spec.output_limit_bytes,
            flood_limit=spec.output_flood_bytes,
            memory_limit=spec.memory_limit_bytes,
        )

    def run_bash(
        self,
        command: str,
        timeout_s: float,
        cancel: threading.Event | None = None,
        on_chunk: OnChunk | None = None,
        tags: dict[str, str] | None = None,
    ) -> ExecutionResult:
        with self._using() as notes:
            self._install_tree(notes)
            started = time.monotonic()
            outcome = self._attempt(
                notes,
                via_runner=lambda ch: self._command(
                    ch, {"op": "bash", "cmd": command}, timeout_s, cancel, on_chunk, tags
                ),
                via_exec=lambda: self._plain_bash(command, timeout_s, cancel, on_chunk, notes),
                after_ack=lambda exc: self._stopped_mid_request(exc, started, notes),
                cold_exec=True,
            )
            if outcome.ended is StreamEnd.EOF and time.monotonic() - started >= timeout_s:
                outcome.ended = StreamEnd.DEADLINE  # the runner died at the deadline
            return self._result(outcome, notes, timeout_s)

    def _plain_bash(
        self,
        command: str,
        timeout_s: float,
        cancel: threading.Event | None,
        on_chunk: OnChunk | None,
        notes: Notes,
    ) -> Outcome:
        self.slot.drop("every process in the sandbox was stopped")  # the wrapper kills all
        spec = self.spec
        return run_plain(
            self.container,
            spec,
            bash_argv(command, timeout_s, spec),
            notes,
            timeout_s=timeout_s,
            kill_processes=self._kill_processes,
            stdout_limit=spec.output_limit_bytes,
            stderr_limit=spec.output_limit_bytes,
            cancel=cancel,
            flood_limit=spec.output_flood_bytes,
            on_chunk=on_chunk,
        )

    def run_python(
        self,
        code: str,
        timeout_s: float,
        cancel: threading.Event | None = None,
        on_chunk: OnChunk | None = None,
        tags: dict[str, str] | None = None,
    ) -> ExecutionResult:
        """Run code in the session's persistent interpreter (variables survive between calls)."""
        with self._using() as notes:
            self._install_tree(notes)
            started = time.monotonic()

            def via_runner(channel: RunnerChannel) -> Outcome:
                self.slot.take_lost_state(notes)
                body = {"op": "python", "code": code}
                outcome = self._command(channel, body, timeout_s, cancel, on_chunk, tags)
                if outcome.python_lost_before and self.slot.python is PythonState.ALIVE:
                    notes.first(Notice.PYTHON_LOST_EARLIER, why=outcome.python_lost_before)
                if outcome.python_lost:
                    self.slot.python = PythonState.NONE
                    notes.add(Notice.PYTHON_RESTARTED, why=python_lost_reason(outcome))
                else:
                    self.slot.python = PythonState.ALIVE
                return outcome

            def via_exec() -> Outcome:
                self.slot.take_lost_state(notes)
                notes.add(Notice.PYTHON_ONE_OFF)
                command = f"python3 -c {shlex.quote(code)}"
                return self._plain_bash(command, timeout_s, cancel, on_chunk, notes)

            def after_ack(exc: RunnerError) -> Outcome:
                self.slot.python = PythonState.NONE
                outcome = self._stopped_mid_request(exc, started, notes)
                outcome.python_lost = True
                return outcome

            outcome = self._attempt(
                notes, via_runner=via_runner, via_exec=via_exec, after_ack=after_ack
            )
            return self._result(outcome, notes, timeout_s)

    def reset_python(self) -> bool:
        """Forget every variable of the session's interpreter; True if there was one."""
        with self.lock:
            had = self.slot.python is PythonState.ALIVE
            self.slot.python = PythonState.NONE
            runner = self.slot.runner
            if runner is not None and runner.alive():
                with contextlib.suppress(RunnerError):
                    runner.request(
                        {"op": "reset_python"}, timeout_s=10, stdout_limit=1024, stderr_limit=1024
                    )
            else:  # no kernel to reset; still say so if the engine is gone
                self.slot.drop("the command runner had stopped")
                self.slot.python = PythonState.NONE
                self.container.engine.ping()
            return had

    # -- files (all inside the container, as the sandbox user) ---------------------------

    def file_op(
        self,
        op: str,
        args: dict[str, Any],
        *,
        stdin: bytes | None = None,
        stdout_limit: int,
        timeout_s: float = 120.0,
        stdout_sink: Sink | None = None,
        cold_exec: bool = False,
    ) -> tuple[bytes, dict[str, Any]]:
        """Run one operation of the in-sandbox files helper: (its output, its metadata)."""
        path = str(args.get("path", "/workspace"))
        with self._using() as notes:
            started = time.monotonic()

            def via_runner(channel: RunnerChannel) -> Outcome:
                reply = channel.request(
                    {"op": "file", "name": op, "args": args},
                    stdin=stdin,
                    timeout_s=timeout_s,
                    stdout_limit=stdout_limit + 1,
                    stderr_limit=_FILE_STDERR_LIMIT,
                    stdout_sink=stdout_sink,
                )
                return _outcome(reply, time.monotonic() - started)

            def via_exec() -> Outcome:
                return run_plain(
                    self.container,
                    self.spec,
                    ["python3", "-I", "-S", "-c", FILES_SCRIPT, op, json.dumps(args)],
                    notes,
                    timeout_s=timeout_s,
                    kill_processes=self._kill_processes,
                    stdout_limit=stdout_limit + 1,
                    stderr_limit=_FILE_STDERR_LIMIT,
                    stdin=stdin,
                    stdout_sink=stdout_sink,
                )

            def after_ack(exc: RunnerError) -> Outcome:
                self.slot.failed(exc, notes)
                self._kill_processes(notes)
                raise SandboxCommandError(
                    f"{op} of {path} failed: the command runner {exc.reason}; try again"
                ) from exc

            outcome = self._attempt(
                notes,
                via_runner=via_runner,
                via_exec=via_exec,
                after_ack=after_ack,
                cold_exec=cold_exec,
            )
        error = file_error(
            op, path, outcome, timeout_s=timeout_s, max_file_bytes=self.spec.max_file_bytes
        )
        if error is not None:
            raise error
        return outcome.stdout, file_meta(outcome.stderr)


def _outcome(reply: RunnerResult, duration_s: float) -> Outcome:
    ended = (
        StreamEnd.DEADLINE
        if reply.timed_out
        else StreamEnd.CANCELLED
        if reply.cancelled
        else StreamEnd.FLOOD
        if reply.flooded
        else StreamEnd.EOF
    )
    return Outcome(
        exit_code=reply.exit_code,
        stdout=reply.stdout,
        stderr=reply.stderr,
        ended=ended,
        duration_s=duration_s,
        stdout_dropped=reply.stdout_dropped,
        stderr_dropped=reply.stderr_dropped,
        runner=True,
        oom=reply.oom,
        python_lost=reply.python_lost,
        python_lost_reason=reply.python_lost_reason,
        python_lost_before=reply.python_lost_before,
    )
