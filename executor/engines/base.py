"""The engine seam: everything the executor needs from a container platform, and nothing more.

    Engine (synchronous, thread-safe; one per executor)
      ping() / version()              is the platform there (SandboxUnavailableError if not)
      image_id(name)                  the id of the sandbox image (ImageNotFoundError if missing)
      inspect(ref) / list(labels)     ContainerInfo of one / of every labelled container
      create(request)                 a hardened container, started; returns its id
      start / stop / kill / remove    lifecycle by name or id
      ensure_volume / remove_volume / list_volumes    the per-session workspaces
      open_exec(ref, argv, stdin)     an ExecChannel: one process inside, streaming both ways
      exec_detached(ref, argv)        fire and forget (the kill-all), never blocks on output
      claim(ref, labels)              take a warm-pool member for a session (default: yes)

    ExecChannel (one running exec; used by one thread at a time)
      wait(timeout, write, wake)      (readable, writable), honouring bytes already buffered;
                                      returns early when the `wake` descriptor is readable
      read()                          [(stream, bytes), ...] now; [] if nothing yet; None at EOF
      send(data)                      bytes accepted now (0 = would block)
      close_stdin()                   half-close; False where the transport cannot (TLS)
      exit_code()                     the process's exit status once it ended (None if unknown)
      close()

Every engine translates its SDK's exceptions into the executor's error tree (errors.py) inside
its own module, so nothing above this seam imports docker, requests or kubernetes (the image
build tool, `executor/image.py`, is a Docker tool beside the engines; tests/unit/test_seam.py
imports everything else with both SDKs blocked). `Sandbox`,
`SandboxManager`, the runner channel and the warm pool talk only to these two classes, so a new
platform is one new module here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from settings import ExecutorSettings

STDOUT, STDERR = 1, 2

Event = tuple[int, bytes]  # (STDOUT or STDERR, bytes)


@dataclass(frozen=True)
class ContainerInfo:
    """What the executor needs to know about one container."""

    id: str
    name: str
    running: bool
    paused: bool
    image_id: str
    labels: dict[str, str] = field(default_factory=dict)
    status: str = ""  # the engine's own word: running, exited, Pending, ...


@dataclass(frozen=True)
class VolumeInfo:
    name: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerRequest:
    """One sandbox to create: the engine turns the spec into its own hardened configuration."""

    name: str
    volume: str
    labels: dict[str, str]
    spec: ExecutorSettings
    tools_path: Path | None
    skills_path: Path | None


class ExecChannel(ABC):
    """One process running inside a sandbox, with its stdin and its two output streams."""

    @abstractmethod
    def wait(
        self, timeout: float, *, write: bool = False, wake: int | None = None
    ) -> tuple[bool, bool]:
        """Block up to `timeout` s until there is something to read (or room to write), or
        the descriptor `wake` is readable (the caller has something to send)."""

    @abstractmethod
    def read(self) -> list[Event] | None:
        """The output that has arrived, as (stream, bytes) pieces; None once it ended."""

    @abstractmethod
    def send(self, data: bytes | memoryview) -> int:
        """Write what the transport takes now; raises ChannelClosed if the process is gone."""

    @abstractmethod
    def close_stdin(self) -> bool:
        """Signal end of input; False if this transport cannot half-close."""

    @abstractmethod
    def exit_code(self) -> int | None:
        """The exit status after the output ended; None if the engine cannot tell."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection (idempotent)."""

    def __enter__(self) -> ExecChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ChannelClosed(Exception):
    """The other end of an exec channel went away while we were writing."""


class Engine(ABC):
    """A container platform that runs hardened sandboxes."""

    name: str = "engine"

    @abstractmethod
    def ping(self) -> None:
        """Raise SandboxUnavailableError unless the platform answers."""

    @abstractmethod
    def version(self) -> str:
        """A short description of the platform, for `make doctor`."""

    @abstractmethod
    def image_id(self, image: str) -> str:
        """The id of `image`; ImageNotFoundError if it is not there."""

    def image_labels(self, image: str) -> dict[str, str] | None:
        """The labels of `image` (None if it is missing or the engine cannot tell)."""
        return None

    @abstractmethod
    def inspect(self, ref: str) -> ContainerInfo | None:
        """The container named or identified by `ref`; None if there is none."""

    @abstractmethod
    def list(self, labels: dict[str, str]) -> list[ContainerInfo]:
        """Every container (running or not) carrying all of `labels`."""

    @abstractmethod
    def create(self, request: ContainerRequest) -> str:
        """Create and start a hardened sandbox; its id. ContainerConflictError if the name
        is taken."""

    @abstractmethod
    def start(self, ref: str) -> None:
        """Start (or unpause) a stopped container."""

    @abstractmethod
    def stop(self, ref: str, timeout_s: float = 1.0) -> None: ...

    @abstractmethod
    def kill(self, ref: str) -> None: ...

    @abstractmethod
    def remove(self, ref: str) -> None:
        """Remove the container, running or not; no error if it is already gone."""

    @abstractmethod
    def ensure_volume(self, name: str, labels: dict[str, str], size_bytes: int) -> None:
        """Create the workspace volume unless it exists."""

    @abstractmethod
    def remove_volume(self, name: str) -> None:
        """Remove a workspace volume; no error if it is already gone."""

    @abstractmethod
    def list_volumes(self, labels: dict[str, str]) -> list[VolumeInfo]: ...

    @abstractmethod
    def open_exec(self, ref: str, argv: list[str], *, stdin: bool) -> ExecChannel:
        """Start `argv` as the sandbox user in /workspace; its channel."""

    @abstractmethod
    def exec_detached(self, ref: str, argv: list[str]) -> None:
        """Start `argv` as the sandbox user and return at once (output discarded)."""

    def runtimes(self) -> set[str]:
        """Container runtimes the platform offers (e.g. runc, runsc for gVisor)."""
        return set()

    def images(self, repositories: list[str]) -> list[tuple[str, int]]:
        """(tag, bytes) of the local images of these repositories (for `make cleanup`)."""
        return []

    def remove_image(self, tag: str) -> None:  # noqa: B027 - optional hook
        """Remove a local image (engines without local images ignore this)."""

    def workspace_quota(self) -> str:
        """How the size of a workspace is enforced, in words (for the log and the doctor)."""
        return "per-file (each file bounded; totals checked on writes and uploads)"

    def prepare_workspaces(self, size_bytes: int) -> None:
        """Get ready to make workspaces of `size_bytes` quickly (in the background); called
        once at start-up. Engines with nothing to prepare ignore it."""
        return None

    def claim(self, ref: str, labels: dict[str, str]) -> bool:
        """Take the warm-pool member `ref` for the session `labels` describe. Engines shared by
        several app processes make this atomic (Kubernetes: a label patch carrying the pod's
        resourceVersion), so exactly one process wins; False = taken by another, or gone."""
        return True

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (idempotent)."""
