"""Sandbox: one session's hardened container, driven synchronously (the docker SDK is synchronous).

Every operation holds the sandbox's lock, so one session never runs two things at once: after each
command every process of the sandbox user is killed, which must not hit a concurrent file write.
`DockerExecutionClient` is the async face of this; nothing here is async.
"""

from __future__ import annotations

import contextlib
import json
import logging
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

logger = logging.getLogger(__name__)

TIMEOUT_EXIT_CODE = 124
KILLED_EXIT_CODE = 137

_FILES_HELPER = (Path(__file__).with_name("_sandbox_files.py")).read_text()

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

_KILL_ALL = "for _ in 1 2 3 4 5 6 7 8 9 10 11 12; do kill -9 -1 2>/dev/null || exit 0; done"


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

    # -- container lifecycle -------------------------------------------------------------

    def ensure_running(self) -> str:
        """The container's id, after creating or starting it if needed."""
        if self._container_id and self._running:
            return self._container_id
        api = self.client.api
        try:
            info = api.inspect_container(self.name)
        except docker.errors.NotFound:
            info = None
        claim, self._claim = self._claim, None  # a session claims at most once, ever
        if info is None and claim is not None and claim(self):
            self._running = True  # a fresh pooled container, now this session's
            self.stopped_idle = False
            assert self._container_id is not None
            return self._container_id
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

    def attach(self, *, name: str, volume: str, container_id: str) -> None:
        """Make an existing container (a claimed pool member) this session's."""
        self.name, self.volume, self._container_id = name, volume, container_id

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

    def stop(self) -> None:
        with self.lock:
            self._running = False
            if self._container_id is None:
                return
            try:
                self.client.api.stop(self._container_id, timeout=1)
            except docker.errors.NotFound:
                self._container_id = None

    def remove(self, *, volume: bool = False) -> None:
        with self.lock:
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
    ) -> _RawExec:
        """Run argv as the sandbox user; on deadline/cancel/flood kill every sandbox process."""
        with self.lock:
            self.last_used = time.monotonic()
            exec_id = self._exec_create(argv, stdin is not None)
            started = time.monotonic()
            sock = self.client.api.exec_start(exec_id, socket=True)
            stream = ExecStream(sock, stdout_limit, stderr_limit, stdin)
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

    def _kill_processes(self, notes: list[str]) -> None:
        """Kill every process of the sandbox user, from a second, detached exec."""
        try:
            cid = self.ensure_running()
            kill_id = self.client.api.exec_create(
                cid, ["bash", "-c", _KILL_ALL], user=_hardening.SANDBOX_USER
            )["Id"]
            self.client.api.exec_start(kill_id, detach=True)
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

    def run_bash(
        self, command: str, timeout_s: float, cancel: threading.Event | None = None
    ) -> ExecutionResult:
        spec = self.spec
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
        )
        stdout = raw.stdout.decode("utf-8", "replace")
        stderr = raw.stderr.decode("utf-8", "replace")
        if raw.stdout_dropped:
            stdout += _drop_marker("stdout", raw.stdout_dropped, spec.output_limit_bytes)
        if raw.stderr_dropped:
            stderr += _drop_marker("stderr", raw.stderr_dropped, spec.output_limit_bytes)
        exit_code, timed_out = raw.exit_code, False
        if raw.ended is StreamEnd.DEADLINE:
            exit_code, timed_out = TIMEOUT_EXIT_CODE, True
            stderr += (
                f"\n[command timed out after {timeout_s:g} s; it and every process it "
                "started were killed]"
            )
        elif raw.ended is StreamEnd.CANCELLED:
            exit_code = KILLED_EXIT_CODE
            stderr += "\n[command cancelled; it and every process it started were killed]"
        elif raw.ended is StreamEnd.FLOOD:
            exit_code = KILLED_EXIT_CODE
            stderr += (
                f"\n[command stopped: it wrote more than {spec.output_flood_bytes:,} bytes "
                "of output]"
            )
        for note in raw.notes:
            stderr += "\n" + note
        return ExecutionResult(
            exit_code,
            stdout,
            stderr.lstrip("\n") if not raw.stderr else stderr,
            timed_out,
            raw.duration_s,
            raw.stdout_dropped,
            raw.stderr_dropped,
        )

    # -- files (all inside the container, as the sandbox user) ---------------------------

    def file_op(
        self,
        op: str,
        args: dict[str, Any],
        *,
        stdin: bytes | None = None,
        stdout_limit: int,
        timeout_s: float = 120.0,
    ) -> tuple[bytes, dict[str, Any]]:
        argv = ["python3", "-I", "-S", "-c", _FILES_HELPER, op, json.dumps(args)]
        raw = self.exec(
            argv,
            timeout_s=timeout_s,
            stdin=stdin,
            stdout_limit=stdout_limit + 1,
            stderr_limit=64 * 1024,
        )
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
