"""The host end of sandbox connections: decide each one, dial it, and move its bytes.

Sandboxes have no network. The proxy inside a sandbox carries each client connection over the
runner's channel; on the host the executor hands it to `EgressRelay.open`, which asks the
`Allowlist` (name first, then every resolved address) and dials the checked address. Bytes then
flow through an `EgressConnection` in both directions, each bounded by a credit window:

- peer -> sandbox: the relay reads from the peer only as much as the sandbox has granted
  (`conn.grant(n)`; the window starts at 0, so nothing flows before the sandbox asks) and hands
  it to `sink.data` at once. The sandbox may have at most `limits.window_bytes` granted and not
  yet delivered; granting more closes the connection.
- sandbox -> peer: the sandbox may have at most `limits.window_bytes` sent and not yet credited;
  each chunk written to the peer is credited with `sink.written(n)`. Sending more closes it.

So the relay holds at most one window per connection (`EgressRelay.buffered_bytes`), and a slow
peer or a slow sandbox stalls only its own connection. Per session there is a cap on connections
at once, on bytes per connection and per session (both directions together), an idle timeout
and a connect timeout. Every connection, refused or not, is one audit record when it ends.

Everything runs on one event loop (the executor's bridge loop): call every method there, and
sink callbacks are called there. Sink callbacks must not block (queue the frames). The relay
does not read from the peer until the first `grant`, so the "opened" frame can be sent first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time

from .connection import (
    Audit,
    EgressConnection,
    EgressLimits,
    EgressSink,
    Refusal,
    _Session,
    _words,
)
from .policy import Allowlist, Resolver

logger = logging.getLogger(__name__)


class EgressRelay:
    """Opens sandbox connections that the allowlist allows, and keeps their limits.

    Args:
        allowlist: the parsed `EXECUTOR_EGRESS_ALLOW`.
        limits: per-session limits and the window of each direction.
        audit: called with one dict per connection when it ends or is refused (keys: operation,
            key, host, port, address, allowed, status, reason, bytes_in, bytes_out,
            duration_s); bytes_in came from the peer, bytes_out went to it.
        resolver: replaces the system resolver (tests).
    """

    def __init__(
        self,
        allowlist: Allowlist,
        limits: EgressLimits,
        audit: Audit,
        resolver: Resolver | None = None,
    ) -> None:
        self.allowlist = allowlist
        self.limits = limits
        self._audit = audit
        self._resolver = resolver
        self._sessions: dict[str, _Session] = {}
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    async def open(
        self, key: str, host: str, port: int, sink: EgressSink
    ) -> EgressConnection | Refusal:
        """Decide and dial `host:port` for the session `key`; events go to `sink`.

        Returns the connection (nothing is read from the peer before the first `grant`), or a
        `Refusal` when it was refused or could not connect (then nothing was sent anywhere,
        and `sink` is never called).
        """
        started = time.monotonic()
        if self._closed:
            return self._refuse(key, host, port, None, "egress is shutting down", 503, started)
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = _Session(key)
        if len(session.connections) + session.opening >= self.limits.max_connections:
            reason = f"too many connections at once (the limit is {self.limits.max_connections})"
            return self._refuse(key, host, port, None, reason, 429, started)
        session.opening += 1
        try:
            return await self._open(session, host, port, sink, started)
        finally:
            session.opening -= 1

    async def _open(
        self, session: _Session, host: str, port: int, sink: EgressSink, started: float
    ) -> EgressConnection | Refusal:
        key, timeout = session.key, self.limits.connect_timeout_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            decision = await asyncio.wait_for(
                asyncio.to_thread(self.allowlist.decide, host, port, self._resolver), timeout
            )
        except TimeoutError:
            reason = f"the name did not resolve within {timeout:g} s"
            return self._refuse(key, host, port, None, reason, 504, started)
        if not decision.allowed:
            return self._refuse(
                key,
                decision.host,
                port,
                decision.address,
                decision.reason,
                decision.status,
                started,
            )
        error = "no address to connect to"
        for address in decision.addresses:
            if session.closed or self._closed:
                break
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                failure = await self._connect(session, sock, address, port, deadline)
            except BaseException:  # cancelled: the socket must not leak
                sock.close()
                raise
            if failure == "timeout":
                sock.close()
                reason = f"{address} did not answer within {timeout:g} s"
                return self._refuse(key, decision.host, port, address, reason, 504, started, True)
            if failure == "cancelled" or session.closed or self._closed:
                sock.close()
                break
            if failure:
                sock.close()
                error = f"could not connect to {address} ({failure})"
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = EgressConnection(self, session, decision, address, sock, sink, started)
            session.connections.add(conn)
            self._tasks |= conn._tasks
            logger.info("egress %s:%d connected to %s for %s", decision.host, port, address, key)
            return conn
        else:
            return self._refuse(
                key, decision.host, port, decision.address, error, 502, started, True
            )
        reason = "egress is shutting down" if self._closed else "the session ended"
        return self._refuse(key, decision.host, port, None, reason, 503, started, True)

    async def _connect(
        self, session: _Session, sock: socket.socket, address: str, port: int, deadline: float
    ) -> str:
        """Connect `sock`; "" when connected, else "timeout", "cancelled" (the session or the
        relay closed meanwhile) or the error's words. The socket is left to the caller, and is
        safe to close: no loop callback watches it any more when this returns."""
        loop = asyncio.get_running_loop()
        task = loop.create_task(loop.sock_connect(sock, (address, port)))
        session.connecting.add(task)
        try:
            await asyncio.wait({task}, timeout=max(deadline - loop.time(), 0))
        finally:
            session.connecting.discard(task)
            timed_out = not task.done()
            if timed_out:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task  # done or cancelled: returns at once, its callbacks have run
        if timed_out:
            return "timeout"
        if task.cancelled():
            return "cancelled"
        exc = task.exception()
        if isinstance(exc, OSError):
            return _words(exc)
        if exc is not None:
            raise exc
        return ""

    def connections(self, key: str) -> int:
        """How many connections the session `key` has open."""
        session = self._sessions.get(key)
        return len(session.connections) if session else 0

    @property
    def buffered_bytes(self) -> int:
        """Bytes the relay holds for all connections (sandbox bytes waiting for their peer)."""
        return sum(c.buffered for s in self._sessions.values() for c in s.connections)

    def close_session(self, key: str, reason: str = "the session ended") -> None:
        """Close every connection of `key` (and refuse its opens still under way). The session's
        byte count starts again from zero afterwards."""
        session = self._sessions.pop(key, None)
        if session is None:
            return
        session.closed = True
        for task in list(session.connecting):
            task.cancel()
        for conn in list(session.connections):
            conn.close(reason)

    def close(self) -> None:
        """Close everything; later opens are refused."""
        self._closed = True
        for key in list(self._sessions):
            self.close_session(key, "egress shut down")

    async def wait_closed(self) -> None:
        """Wait until the tasks of closed connections have ended and their sockets are closed."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _forget_tasks(self, tasks: set[asyncio.Task]) -> None:
        self._tasks -= tasks

    def _refuse(
        self,
        key: str,
        host: str,
        port: int,
        address: str | None,
        reason: str,
        status: int,
        started: float,
        allowed: bool = False,
    ) -> Refusal:
        logger.info("egress %s:%d for %s refused (%d): %s", host, port, key, status, reason)
        self._audit_record(key, host, port, address, allowed, status, reason, 0, 0, started)
        return Refusal(reason, status)

    def _audit_record(
        self,
        key: str,
        host: str,
        port: int,
        address: str | None,
        allowed: bool,
        status: int,
        reason: str,
        bytes_in: int,
        bytes_out: int,
        started: float,
    ) -> None:
        self._audit(
            {
                "operation": "egress",
                "key": key,
                "host": str(host)[:255],
                "port": port,
                "address": address,
                "allowed": allowed,
                "status": status,
                "reason": reason,
                "bytes_in": bytes_in,
                "bytes_out": bytes_out,
                "duration_s": round(time.monotonic() - started, 4),
            }
        )
