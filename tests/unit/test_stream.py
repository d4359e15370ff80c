"""The exec stream reader, over a real socket pair: demultiplexing, caps, deadline, stdin."""

from __future__ import annotations

import socket
import struct
import threading
import time

from executor._stream import ExecStream, StreamEnd


def frame(stream_id: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream_id, len(payload)) + payload


def test_frames_are_demultiplexed_even_when_split_across_reads():
    ours, theirs = socket.socketpair()
    data = frame(1, b"hello ") + frame(2, b"oops") + frame(1, b"world")
    reader = ExecStream(ours, 1000, 1000)

    def send_slowly():
        for i in range(0, len(data), 3):
            theirs.sendall(data[i : i + 3])
            time.sleep(0.001)
        theirs.close()

    threading.Thread(target=send_slowly).start()
    assert reader.pump(time.monotonic() + 5) is StreamEnd.EOF
    assert bytes(reader.stdout.data) == b"hello world"
    assert bytes(reader.stderr.data) == b"oops"


def test_each_stream_keeps_only_its_cap_and_counts_the_rest():
    ours, theirs = socket.socketpair()
    reader = ExecStream(ours, 10, 4)
    sender = threading.Thread(
        target=lambda: (
            theirs.sendall(frame(1, b"x" * 100_000) + frame(2, b"e" * 9)),
            theirs.close(),
        )
    )
    sender.start()
    assert reader.pump(time.monotonic() + 5) is StreamEnd.EOF
    assert (bytes(reader.stdout.data), reader.stdout.dropped) == (b"x" * 10, 99_990)
    assert (bytes(reader.stderr.data), reader.stderr.dropped) == (b"eeee", 5)


def test_deadline_returns_while_the_peer_is_silent():
    ours, theirs = socket.socketpair()
    reader = ExecStream(ours, 10, 10)
    started = time.monotonic()
    assert reader.pump(started + 0.3) is StreamEnd.DEADLINE
    assert 0.25 < time.monotonic() - started < 2
    theirs.close()


def test_cancel_and_flood_stop_the_pump():
    ours, theirs = socket.socketpair()
    cancel = threading.Event()
    reader = ExecStream(ours, 10, 10)
    threading.Timer(0.2, cancel.set).start()
    assert reader.pump(time.monotonic() + 10, cancel=cancel) is StreamEnd.CANCELLED
    theirs.sendall(frame(1, b"z" * 5000))
    assert reader.pump(time.monotonic() + 5, flood_limit=1000) is StreamEnd.FLOOD
    theirs.close()


def test_stdin_is_sent_whole_and_half_closed():
    ours, theirs = socket.socketpair()
    payload = bytes(range(256)) * 20_000  # 5 MB: more than any socket buffer
    received = bytearray()

    def echo_back():
        while chunk := theirs.recv(65536):
            received.extend(chunk)
        theirs.sendall(frame(1, b"%d" % len(received)))
        theirs.close()

    threading.Thread(target=echo_back).start()
    reader = ExecStream(ours, 100, 100, stdin=payload)
    assert reader.pump(time.monotonic() + 10) is StreamEnd.EOF
    assert bytes(received) == payload
    assert bytes(reader.stdout.data) == str(len(payload)).encode()
