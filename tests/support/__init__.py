"""Helpers shared by the test tiers, one definition each.

Here: free ports, waiting for a condition, reading the audit log. Beside it: `engines.py` (clients
on each engine, and the Kubernetes exec tier's session fixtures), `daemons.py` (a second Docker
daemon), `login_app.py` (the login layer served alone), `scripted_llm.py` (scripted models).
Fixtures live in the conftest files; tests/fakes holds the fake model APIs."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_for(
    condition: Callable[[], bool], timeout: float = 60.0, what: str = "condition"
) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def audit_lines(path: Path) -> list[dict]:
    """The audit log's entries, oldest first (none when it was never written)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]
