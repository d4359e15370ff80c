"""The host end of egress: real TCP through `EgressRelay` to peers on 127.0.0.1, no Docker.

`SandboxEnd` plays the sandbox's proxy the way the runner's frames will: it grants credit for
what it consumed and sends only within the credit `written` returned. Peers on 127.0.0.1 are
allowed by literal entries; refused ones count their connections to prove they saw none.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import time
import tracemalloc

import pytest

from executor.egress import Allowlist, EgressConnection, EgressLimits, EgressRelay, Refusal
from tests.egress.support import (
    EchoPeer,
    FloodPeer,
    FullBacklogPeer,
    SilentPeer,
    TransferPeer,
    mapping_resolver,
)

WAIT_S = 60.0

pytestmark = pytest.mark.egress


class SandboxEnd:
    """The sandbox side of one connection: consumes, grants, sends within its credit."""

    def __init__(self, relay: EgressRelay, *, grant: bool = True) -> None:
        self.relay = relay
        self.window = relay.limits.window_bytes
        self.grant = grant
        self.conn: EgressConnection | None = None
        self.digest = hashlib.sha256()
        self.received = 0
        self.kept = bytearray()
        self.keep = False
        self.in_flight = 0  # sent, not yet credited by `written`
        self.credit = asyncio.Event()
        self.eof_seen = asyncio.Event()
        self.closed_event = asyncio.Event()
        self.reason: str | None = None
        self.calls_after_close = 0
        self.peak_relay_buffer = 0
        self.peak_ungranted = 0
        self._ungranted = 0

    # the sink
    def data(self, data: bytes) -> None:
        self._after_close()
        self.digest.update(data)
        self.received += len(data)
        if self.keep:
            self.kept += data
        self._ungranted += len(data)
        self.peak_ungranted = max(self.peak_ungranted, self._ungranted)
        self.peak_relay_buffer = max(self.peak_relay_buffer, self.relay.buffered_bytes)
        if self.grant:  # consumed on the next turn of the loop, as a frame reader would
            asyncio.get_running_loop().call_soon(self._consume, len(data))

    def written(self, n: int) -> None:
        self._after_close()
        self.in_flight -= n
        self.peak_relay_buffer = max(self.peak_relay_buffer, self.relay.buffered_bytes)
        self.credit.set()

    def eof(self) -> None:
        self._after_close()
        self.eof_seen.set()

    def closed(self, reason: str) -> None:
        self._after_close()
        self.reason = reason
        self.closed_event.set()

    def _after_close(self) -> None:
        if self.reason is not None:
            self.calls_after_close += 1

    def _consume(self, n: int) -> None:
        self._ungranted -= n
        if self.conn is not None:
            self.conn.grant(n)

    # the sandbox's own actions
    def start(self, conn: EgressConnection) -> EgressConnection:
        self.conn = conn
        if self.grant:
            conn.grant(self.window)
        return conn

    async def send(self, data: bytes, chunk: int = 16 << 10) -> None:
        assert self.conn is not None
        view = memoryview(data)
        for start in range(0, len(data), chunk):
            piece = view[start : start + chunk]
            while self.in_flight + len(piece) > self.window:
                self.credit.clear()
                await self.credit.wait()
            self.in_flight += len(piece)
            self.conn.send(bytes(piece))
            if self.conn.closed:
                return

    async def wait_closed(self) -> str:
        await asyncio.wait_for(self.closed_event.wait(), WAIT_S)
        assert self.reason is not None
        return self.reason


async def until(condition, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


@pytest.fixture
def audit():
    return []


def make_relay(audit, allow: str, resolver=None, **limits) -> EgressRelay:
    return EgressRelay(Allowlist.parse(allow), EgressLimits(**limits), audit.append, resolver)


async def connect(relay: EgressRelay, host: str, port: int, key: str = "alice/chat", **kw):
    end = SandboxEnd(relay, **kw)
    conn = await relay.open(key, host, port, end)
    assert isinstance(conn, EgressConnection), conn
    return end.start(conn), end


async def test_echo_both_ways_and_one_audit_record():
    audit: list[dict] = []
    with EchoPeer() as peer:
        relay = make_relay(audit, f"127.0.0.1:{peer.port}")
        conn, end = await connect(relay, "127.0.0.1", peer.port)
        end.keep = True
        payload = os.urandom(1 << 20)
        await end.send(payload)
        conn.shutdown_write()
        assert await end.wait_closed() == "done"
        assert end.eof_seen.is_set()
        assert bytes(end.kept) == payload
        await relay.wait_closed()
    assert end.calls_after_close == 0
    assert len(audit) == 1
    record = audit[0]
    assert record["operation"] == "egress"
    assert record["key"] == "alice/chat"
    assert (record["host"], record["port"], record["address"]) == (
        "127.0.0.1",
        peer.port,
        "127.0.0.1",
    )
    assert (record["allowed"], record["status"], record["reason"]) == (True, 200, "done")
    assert record["bytes_in"] == record["bytes_out"] == 1 << 20
    assert record["duration_s"] >= 0


async def test_a_100_mb_transfer_each_way_is_byte_exact_in_bounded_memory():
    audit: list[dict] = []
    size, window = 100 << 20, 64 << 10
    with TransferPeer(size) as peer:
        relay = make_relay(audit, f"127.0.0.1:{peer.port}", window_bytes=window)
        tracemalloc.start()
        try:
            conn, end = await connect(relay, "127.0.0.1", peer.port)
            upload = hashlib.sha256()
            for _ in range(size // (1 << 20)):
                block = os.urandom(1 << 20)
                upload.update(block)
                await end.send(block)
            conn.shutdown_write()
            assert await end.wait_closed() == "done"
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert await asyncio.to_thread(peer.records[0].done.wait, WAIT_S)
    record = peer.records[0]
    assert end.received == size
    assert end.digest.hexdigest() == record.sent_sha256
    assert record.received == size
    assert record.received_sha256 == upload.hexdigest()
    assert end.peak_relay_buffer <= window
    assert end.peak_ungranted <= window
    assert peak < 8 << 20, f"peak traced memory {peak} bytes"
    assert (audit[0]["bytes_in"], audit[0]["bytes_out"]) == (size, size)


async def test_refused_requests_never_reach_the_peer(audit):
    with SilentPeer() as peer:
        resolver = mapping_resolver({"rebind.test": "127.0.0.1", "v6.test": "::1"})
        allow = f"127.0.0.1:{peer.port + 1},rebind.test:{peer.port},v6.test:{peer.port}"
        relay = make_relay(audit, allow, resolver)
        attempts = [
            ("127.0.0.1", peer.port, "is not allowed for 127.0.0.1"),
            ("2130706433", peer.port, "is not allowed for 127.0.0.1"),
            ("0x7f.1", peer.port, "is not allowed for 127.0.0.1"),
            ("::1", peer.port, "not in EXECUTOR_EGRESS_ALLOW"),
            ("[::ffff:127.0.0.1]", peer.port, "is not allowed for 127.0.0.1"),
            ("localhost", peer.port, "not in EXECUTOR_EGRESS_ALLOW"),
            ("evil.test", peer.port, "not in EXECUTOR_EGRESS_ALLOW"),
            ("rebind.test", peer.port, "resolves to a loopback address 127.0.0.1"),
            ("v6.test", peer.port, "resolves to a loopback address ::1"),
            ("rebind.test", 443, "port 443 is not allowed"),
        ]
        for host, port, words in attempts:
            end = SandboxEnd(relay)
            refusal = await relay.open("alice/chat", host, port, end)
            assert isinstance(refusal, Refusal), host
            assert refusal.status == 403
            assert words in refusal.reason, (host, refusal.reason)
            assert end.received == 0
            assert end.reason is None  # the sink of a refused open is never called
        await asyncio.sleep(0.2)
        assert peer.accepted == 0
    assert resolver.calls == ["rebind.test", "v6.test"]  # refused names were not looked up
    assert len(audit) == len(attempts)
    assert all(not r["allowed"] and r["status"] == 403 for r in audit)
    assert audit[7]["address"] == "127.0.0.1"


async def test_a_peer_sending_1_gb_is_cut_at_the_connection_cap(audit):
    cap = 8 << 20
    with FloodPeer(1 << 30) as peer:
        relay = make_relay(audit, f"127.0.0.1:{peer.port}", max_connection_bytes=cap)
        _, end = await connect(relay, "127.0.0.1", peer.port)
        assert await end.wait_closed() == "the connection passed its limit of 8 MiB"
        await relay.wait_closed()
        await asyncio.sleep(0.2)
        sent = peer.sent
    assert end.received == cap
    assert sent < 64 << 20, "the flood went on after the cap"
    assert audit[0]["bytes_in"] == cap


async def test_the_session_cap_spans_its_connections(audit):
    with FloodPeer(1 << 30) as peer:
        relay = make_relay(audit, f"127.0.0.1:{peer.port}", max_session_bytes=6 << 20)
        (_, first), (_, second) = [await connect(relay, "127.0.0.1", peer.port) for _ in range(2)]
        reasons = {await first.wait_closed(), await second.wait_closed()}
        _, bob = await connect(relay, "127.0.0.1", peer.port, key="bob/chat")
        assert await bob.wait_closed() == "the session passed its limit of 6 MiB"
        await relay.wait_closed()
    assert bob.received > 5 << 20  # another session's budget is its own
    assert reasons == {"the session passed its limit of 6 MiB"}
    assert first.received + second.received <= (6 << 20) + 2 * (64 << 10)


async def test_a_slow_sandbox_stalls_only_its_own_connection(audit):
    window = 64 << 10
    with FloodPeer(1 << 30) as peer:
        relay = make_relay(audit, f"127.0.0.1:{peer.port}", window_bytes=window)
        stalled, stalled_end = await connect(relay, "127.0.0.1", peer.port, grant=False)
        stalled.grant(window)  # one window, then never consumes
        _, busy_end = await connect(relay, "127.0.0.1", peer.port)
        await until(lambda: busy_end.received >= 20 << 20)
        assert stalled_end.received == window
        assert not stalled.closed
        assert relay.buffered_bytes == 0
        relay.close()
        await relay.wait_closed()


async def test_a_peer_that_never_answers_is_closed_when_idle(audit):
    with SilentPeer() as peer:
        relay = make_relay(audit, f"127.0.0.1:{peer.port}", idle_timeout_s=0.3)
        started = time.monotonic()
        _, end = await connect(relay, "127.0.0.1", peer.port)
        assert await end.wait_closed() == "idle for 0.3 s (no bytes either way)"
        assert time.monotonic() - started >= 0.3
        await relay.wait_closed()
    assert audit[0]["reason"].startswith("idle")


async def test_bytes_keep_an_idle_timer_from_firing(audit):
    with EchoPeer() as peer:
        relay = make_relay(audit, f"127.0.0.1:{peer.port}", idle_timeout_s=0.3)
        conn, end = await connect(relay, "127.0.0.1", peer.port)
        for _ in range(8):
            await end.send(b"x")
            await asyncio.sleep(0.1)
        assert not conn.closed
        assert end.received == 8
        assert await end.wait_closed() == "idle for 0.3 s (no bytes either way)"


async def test_a_peer_that_does_not_accept_times_out(audit):
    with FullBacklogPeer() as peer:
        relay = make_relay(audit, f"127.0.0.1:{peer.port}", connect_timeout_s=0.3)
        refusal = await relay.open("alice/chat", "127.0.0.1", peer.port, SandboxEnd(relay))
    assert refusal == Refusal("127.0.0.1 did not answer within 0.3 s", 504)
    assert (audit[0]["allowed"], audit[0]["status"]) == (True, 504)


async def test_a_closed_port_is_a_502(audit):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connections are refused
        relay = make_relay(audit, f"127.0.0.1:{port}")
        refusal = await relay.open("alice/chat", "127.0.0.1", port, SandboxEnd(relay))
    assert refusal.status == 502
    assert refusal.reason.startswith("could not connect to 127.0.0.1 (Connection refused")


async def test_an_allowed_name_that_does_not_resolve_is_a_502(audit):
    relay = make_relay(audit, "pypi.test", mapping_resolver({}))
    refusal = await relay.open("alice/chat", "pypi.test", 443, SandboxEnd(relay))
    assert refusal == Refusal("could not be resolved", 502)


async def test_200_connections_at_once_against_the_limit_then_close_session(audit):
    with SilentPeer() as peer:
        relay = make_relay(audit, f"127.0.0.1:{peer.port}", max_connections=32)
        ends = [SandboxEnd(relay) for _ in range(200)]
        results = await asyncio.gather(
            *(relay.open("alice/chat", "127.0.0.1", peer.port, end) for end in ends)
        )
        opened = [r for r in results if isinstance(r, EgressConnection)]
        refused = [r for r in results if isinstance(r, Refusal)]
        assert len(opened) == 32
        assert len(refused) == 168
        assert {r.status for r in refused} == {429}
        assert refused[0].reason == "too many connections at once (the limit is 32)"
        other = await relay.open("bob/chat", "127.0.0.1", peer.port, SandboxEnd(relay))
        assert isinstance(other, EgressConnection)  # another session is not affected
        await until(lambda: peer.accepted == 33)
        assert relay.connections("alice/chat") == 32

        relay.close_session("alice/chat")
        reasons = {end.reason for end, r in zip(ends, results, strict=True) if r in opened}
        assert reasons == {"the session ended"}
        assert relay.connections("alice/chat") == 0
        assert not other.closed
        again = await relay.open("alice/chat", "127.0.0.1", peer.port, SandboxEnd(relay))
        assert isinstance(again, EgressConnection)
        relay.close()
        assert other.closed
        assert again.closed
        later = await relay.open("alice/chat", "127.0.0.1", peer.port, SandboxEnd(relay))
        assert later == Refusal("egress is shutting down", 503)
        await relay.wait_closed()
    assert len(audit) == 200 + 3
    assert sum(r["status"] == 429 for r in audit) == 168


async def test_close_session_during_a_connect_refuses_it(audit):
    with FullBacklogPeer() as peer:
        relay = make_relay(audit, f"127.0.0.1:{peer.port}", connect_timeout_s=5)
        opening = asyncio.ensure_future(
            relay.open("alice/chat", "127.0.0.1", peer.port, SandboxEnd(relay))
        )
        await asyncio.sleep(0.3)
        relay.close_session("alice/chat")
        # The pending connect still runs to its timeout; it must not become a connection.
        result = await asyncio.wait_for(opening, WAIT_S)
    assert isinstance(result, Refusal)


async def test_a_sandbox_that_breaks_the_window_loses_the_connection(audit):
    with EchoPeer() as peer:
        relay = make_relay(audit, f"127.0.0.1:{peer.port}", window_bytes=1024)
        conn, end = await connect(relay, "127.0.0.1", peer.port, grant=False)
        conn.send(b"x" * 1025)
        assert await end.wait_closed() == "the sandbox sent more than its window"
        conn, end = await connect(relay, "127.0.0.1", peer.port, grant=False)
        conn.grant(1024)
        conn.grant(1)
        assert await end.wait_closed() == "the sandbox granted more than its window"
        conn, end = await connect(relay, "127.0.0.1", peer.port, grant=False)
        conn.shutdown_write()
        conn.send(b"late")
        assert await end.wait_closed() == "the sandbox sent data after closing its side"
        conn.send(b"ignored")  # calls after the end are ignored
        conn.grant(10)
        conn.close()
        await relay.wait_closed()
    assert end.calls_after_close == 0


async def test_close_aborts_and_is_reported_once(audit):
    with EchoPeer() as peer:
        relay = make_relay(audit, f"127.0.0.1:{peer.port}")
        conn, end = await connect(relay, "127.0.0.1", peer.port)
        conn.close()
        conn.close()
        relay.close_session("alice/chat")
        assert end.reason == "closed by the sandbox"
        await relay.wait_closed()
    assert end.calls_after_close == 0
    assert len(audit) == 1
