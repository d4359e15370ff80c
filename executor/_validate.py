"""Argument checks of the public API: pure, so bad input is refused before anything runs."""

from __future__ import annotations

import math
from typing import Any

from .errors import InvalidArgumentError

MAX_COMMAND_BYTES = 100_000  # one argv element must stay under 128 KiB


def timeout_s(timeout: Any, maximum: float) -> float:
    """A finite number of seconds in (0, maximum]; `timeout 0` would mean "never"."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise InvalidArgumentError(f"timeout must be a number of seconds, not {timeout!r}")
    if not math.isfinite(timeout) or timeout <= 0:
        raise InvalidArgumentError(f"timeout must be more than 0 seconds, not {timeout!r}")
    if timeout > maximum:
        raise InvalidArgumentError(f"timeout {timeout:g} s is over the limit of {maximum:g} s")
    return float(timeout)


def command(text: Any) -> str:
    if not isinstance(text, str):
        raise InvalidArgumentError("command must be a string")
    if "\0" in text:
        raise InvalidArgumentError("command contains a NUL byte")
    if len(text.encode("utf-8", "surrogateescape")) > MAX_COMMAND_BYTES:
        raise InvalidArgumentError(
            f"command is longer than {MAX_COMMAND_BYTES:,} bytes; write it to a file with "
            "write_file and run the file instead"
        )
    return text


def path(value: Any) -> str:
    if not isinstance(value, str) or not value or "\0" in value:
        raise InvalidArgumentError(f"invalid path {value!r}: a non-empty string without NUL bytes")
    return value


def offset(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentError(f"offset must be a whole number >= 0, not {value!r}")
    return value


def line_count(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"line_count must be a whole number >= 1, not {value!r}")
    return value


def content(value: Any) -> bytes:
    data = value.encode("utf-8") if isinstance(value, str) else value
    if not isinstance(data, bytes | bytearray):
        raise InvalidArgumentError("content must be str or bytes")
    return bytes(data)
