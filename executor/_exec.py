"""Drive one exec channel to its end: stdin in, output into capped sinks, with a deadline.

Each output stream keeps at most its cap and counts the rest, while the channel keeps being
drained (an undrained, unclosed exec wedges the container on Docker). A file sink writes output
to disk as it arrives, so a big download never sits in memory. Stdin is written as the channel
takes it, interleaved with reading, so large input and output never deadlock each other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import BinaryIO, Protocol

from .engines.base import STDOUT, ChannelClosed, ExecChannel

_POLL_S = 0.25  # how often a long wait looks at the cancel flag
_SEND_SIZE = 256 * 1024

OnChunk = Callable[[str, bytes], None]  # ("stdout" | "stderr", bytes), live, as they arrive


class StreamEnd(Enum):
    EOF = "eof"  # the process finished and its output ended
    DEADLINE = "deadline"
    CANCELLED = "cancelled"
    FLOOD = "flood"  # more output than the flood limit


class Sink(Protocol):
    dropped: int

    def feed(self, chunk: bytes | memoryview) -> None: ...

    def kept(self) -> int: ...


_TAIL = 256


@dataclass
class CappedBuffer:
    """Keeps the first `limit` bytes written to it and counts the rest; also the last few bytes
    (a status line at the very end of a flood must not be lost)."""

    limit: int
    data: bytearray = field(default_factory=bytearray)
    dropped: int = 0
    tail: bytearray = field(default_factory=bytearray)

    def feed(self, chunk: bytes | memoryview) -> None:
        self.tail = (self.tail + chunk[-_TAIL:])[-_TAIL:]
        room = self.limit - len(self.data)
        if room >= len(chunk):
            self.data += chunk
        else:
            if room > 0:
                self.data += chunk[:room]
            self.dropped += len(chunk) - max(room, 0)

    def kept(self) -> int:
        return len(self.data)


@dataclass
class FileSink:
    """Writes what it is fed to a file, up to `limit` bytes; counts the rest."""

    file: BinaryIO
    limit: int
    written: int = 0
    dropped: int = 0

    def feed(self, chunk: bytes | memoryview) -> None:
        room = self.limit - self.written
        take = min(room, len(chunk))
        if take > 0:
            self.file.write(chunk[:take])
            self.written += take
        self.dropped += len(chunk) - max(take, 0)

    def kept(self) -> int:
        return self.written


def pump(
    channel: ExecChannel,
    *,
    deadline: float,
    stdout: Sink,
    stderr: Sink,
    stdin: bytes | None = None,
    cancel: threading.Event | None = None,
    flood_limit: int | None = None,
    on_chunk: OnChunk | None = None,
) -> StreamEnd:
    """Move bytes until the process ends, the deadline passes, `cancel` is set or output floods."""
    to_send = memoryview(stdin) if stdin is not None else None
    sent = 0
    received = 0
    if to_send is not None and not len(to_send):
        channel.close_stdin()
        to_send = None
    while True:
        if flood_limit is not None and received > flood_limit:
            return StreamEnd.FLOOD
        if cancel is not None and cancel.is_set():
            return StreamEnd.CANCELLED
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return StreamEnd.DEADLINE
        want_write = to_send is not None
        wait = min(remaining, _POLL_S) if cancel is not None else remaining
        readable, writable = channel.wait(wait, write=want_write)
        if writable and to_send is not None:
            try:
                sent += channel.send(to_send[sent : sent + _SEND_SIZE])
            except ChannelClosed:  # the process stopped reading (it exited): drop the rest
                sent = len(to_send)
            if sent >= len(to_send):
                channel.close_stdin()
                to_send = None
        if readable:
            events = channel.read()
            if events is None:
                return StreamEnd.EOF
            for stream, data in events:
                received += len(data)
                (stdout if stream == STDOUT else stderr).feed(data)
                if on_chunk is not None:
                    on_chunk("stdout" if stream == STDOUT else "stderr", data)
