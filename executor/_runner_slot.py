"""A session's resident runner and the state of the Python kernel inside it.

The runner is started on demand, restarted when it is gone, and given up after three failures
(the session then stays on plain exec). The kernel lives inside the runner, so whenever the
runner is dropped, variables from earlier `run_python` calls are lost: the slot remembers that,
and why, so the next call can say so.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from enum import Enum

from settings import ExecutorSettings

from ._container import KILL_ALL, SandboxContainer
from ._wording import Notes, Notice
from .engines.base import Engine
from .errors import EngineError, ExecutorError
from .runner import RunnerChannel, RunnerError

logger = logging.getLogger(__name__)

FAILURES_ALLOWED = 3  # after this many, a session uses plain exec only


class PythonState(Enum):
    NONE = "none"  # no interpreter with state (never started, or reset)
    ALIVE = "alive"  # variables from earlier calls are there
    LOST = "lost"  # it had state, and that state is gone (see RunnerSlot.python_lost_why)


class RunnerSlot:
    def __init__(
        self,
        container: SandboxContainer,
        spec: ExecutorSettings,
        kill_quietly: Callable[[], None],
        proxy: bool = False,
    ) -> None:
        self.container = container
        self.spec = spec
        self._kill_quietly = kill_quietly  # used before abandoning a misbehaving runner
        self.proxy = proxy  # runners serve the egress proxy (EXECUTOR_EGRESS_ALLOW allows some)
        self.runner: RunnerChannel | None = None
        self.failures = 0
        self.python = PythonState.NONE
        self.python_lost_why = ""

    @property
    def pid(self) -> int | None:
        return self.runner.pid if self.runner is not None and not self.runner.closed else None

    def adopt(self, runner: RunnerChannel | None) -> None:
        """Take a runner started ahead of time (a claimed pool member's)."""
        if runner is not None:
            runner.kill_all = self._kill_quietly
            self.runner = runner

    def drop(self, why: str) -> None:
        """Forget the runner (it is gone or untrusted); the kernel's state goes with it."""
        if self.runner is not None:
            self.runner.close()
            self.runner = None
        if self.python is PythonState.ALIVE:
            self.python, self.python_lost_why = PythonState.LOST, why

    def take_lost_state(self, notes: Notes) -> None:
        """If earlier variables were lost, say so (once) before the next Python call."""
        if self.python is PythonState.LOST:
            notes.first(Notice.PYTHON_LOST_EARLIER, why=self.python_lost_why)
            self.python = PythonState.NONE

    def get(self, notes: Notes) -> RunnerChannel | None:
        """The runner, started or restarted as needed; None means use a plain exec."""
        if not self.spec.use_runner or self.failures >= FAILURES_ALLOWED:
            return None
        if self.runner is not None:
            if self.runner.alive():
                return self.runner
            self.drop("the command runner had stopped")
            notes.add(Notice.RUNNER_RESTARTED)
        for attempt in (1, 2):
            ref = self.container.ensure_running()
            if self.runner is not None and self.runner.alive():
                return self.runner  # a claimed pool member came with its runner started
            try:
                self.runner = RunnerChannel(
                    self.container.engine,
                    ref,
                    kill_grace_s=self.spec.kill_grace_s,
                    kill_all=self._kill_quietly,
                    proxy=self.proxy,
                )
                return self.runner
            except EngineError as exc:  # the container went away: start it and try again
                self.container.running = False
                if attempt == 2:
                    notes.add(Notice.RUNNER_NOT_STARTED, reason=str(exc))
            except RunnerError as exc:
                self.failed(exc, notes)
                notes.add(Notice.PLAIN_EXEC)
                return None
        return None

    def start_ahead(self) -> RunnerChannel | None:
        """A runner for the next commands, started without holding up the session (install it
        with `take_ahead`); None if one runs already or it would not start (no strike: the
        next command tries again, and counts it)."""
        if self.runner is not None or not self.spec.use_runner or not self.container.running:
            return None
        try:
            return RunnerChannel(
                self.container.engine,
                self.container.ensure_running(),
                kill_grace_s=self.spec.kill_grace_s,
                kill_all=self._kill_quietly,
                proxy=self.proxy,
            )
        except (RunnerError, ExecutorError) as exc:  # e.g. the session was removed meanwhile
            logger.info("runner warm-up of %s: %s", self.container.name, exc)
            return None

    def take_ahead(self, runner: RunnerChannel | None) -> None:
        """Use a runner `start_ahead` made, unless a command started one meanwhile."""
        if runner is None:
            return
        if self.runner is None:
            self.runner = runner
        else:
            runner.close()

    def failed(self, exc: RunnerError, notes: Notes) -> None:
        """Count a failure of the runner; after FAILURES_ALLOWED the session stops using it."""
        self.drop("the command runner failed")
        self.failures += 1
        logger.warning(
            "sandbox %s: runner %s (acked=%s)", self.container.name, exc.reason, exc.acked
        )
        off = self.failures >= FAILURES_ALLOWED
        notes.add(Notice.RUNNER_OFF if off else Notice.RUNNER_FAILED, reason=exc.reason)


def runner_ahead(
    engine: Engine, spec: ExecutorSettings, container_id: str, *, proxy: bool
) -> RunnerChannel | None:
    """Start a warm-pool member's runner (and its Python kernel) ahead of time; None if it will
    not start (then the session starts one on first use)."""

    def kill_all() -> None:
        with contextlib.suppress(EngineError):
            engine.exec_detached(container_id, ["bash", "-c", KILL_ALL])

    try:
        runner = RunnerChannel(
            engine,
            container_id,
            kill_grace_s=spec.kill_grace_s,
            kill_all=kill_all,
            proxy=proxy,
        )
    except (RunnerError, EngineError) as exc:
        logger.warning("pool member runner did not start: %s", exc)
        return None
    try:  # the Python kernel too, so a session's first run_python is as quick as its next
        runner.request(
            {"op": "python", "code": "", "timeout": 30, "limit": 4096, "flood": 1 << 20},
            timeout_s=30,
            stdout_limit=4096,
            stderr_limit=4096,
        )
    except RunnerError as exc:
        logger.warning("pool member kernel did not start: %s", exc)
        runner.abandon()
        return None
    return runner
