"""Docker's exec stream over real sockets (plain and TLS): demultiplexing, caps, deadline, stdin."""

from __future__ import annotations

import os
import resource
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest

from executor._exec import CappedBuffer, FileSink, StreamEnd, pump
from executor.engines._docker_io import DockerExecChannel


def frame(stream_id: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream_id, len(payload)) + payload


def channel_over(sock: socket.socket) -> DockerExecChannel:
    return DockerExecChannel(api=None, exec_id="", raw=sock)


def drive(channel, *, deadline_s=5.0, limits=(1000, 1000), **kwargs):
    out, err = CappedBuffer(limits[0]), CappedBuffer(limits[1])
    ended = pump(channel, deadline=time.monotonic() + deadline_s, stdout=out, stderr=err, **kwargs)
    return ended, out, err


def test_frames_are_demultiplexed_even_when_split_across_reads():
    ours, theirs = socket.socketpair()
    data = frame(1, b"hello ") + frame(2, b"oops") + frame(1, b"world")

    def send_slowly():
        for i in range(0, len(data), 3):
            theirs.sendall(data[i : i + 3])
            time.sleep(0.001)
        theirs.close()

    threading.Thread(target=send_slowly).start()
    ended, out, err = drive(channel_over(ours))
    assert ended is StreamEnd.EOF
    assert (bytes(out.data), bytes(err.data)) == (b"hello world", b"oops")


def test_each_stream_keeps_only_its_cap_counts_the_rest_and_keeps_the_tail():
    ours, theirs = socket.socketpair()
    sender = threading.Thread(
        target=lambda: (
            theirs.sendall(frame(1, b"x" * 100_000 + b"END") + frame(2, b"e" * 9)),
            theirs.close(),
        )
    )
    sender.start()
    ended, out, err = drive(channel_over(ours), limits=(10, 4))
    assert ended is StreamEnd.EOF
    assert (bytes(out.data), out.dropped) == (b"x" * 10, 99_993)
    assert bytes(out.tail).endswith(b"xxEND")
    assert (bytes(err.data), err.dropped) == (b"eeee", 5)


def test_deadline_returns_while_the_peer_is_silent():
    ours, theirs = socket.socketpair()
    started = time.monotonic()
    ended, _, _ = drive(channel_over(ours), deadline_s=0.3)
    assert ended is StreamEnd.DEADLINE
    assert 0.25 < time.monotonic() - started < 2
    theirs.close()


def test_cancel_and_flood_stop_the_pump():
    ours, theirs = socket.socketpair()
    channel = channel_over(ours)
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    assert drive(channel, deadline_s=10, cancel=cancel)[0] is StreamEnd.CANCELLED
    theirs.sendall(frame(1, b"z" * 5000))
    assert drive(channel, flood_limit=1000)[0] is StreamEnd.FLOOD
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
    ended, out, _ = drive(channel_over(ours), deadline_s=10, stdin=payload)
    assert ended is StreamEnd.EOF
    assert bytes(received) == payload
    assert bytes(out.data) == str(len(payload)).encode()


def test_a_file_sink_writes_output_to_disk_up_to_its_limit(tmp_path):
    ours, theirs = socket.socketpair()
    threading.Thread(
        target=lambda: (theirs.sendall(frame(1, b"a" * 300_000)), theirs.close())
    ).start()
    with (tmp_path / "out.bin").open("wb") as file:
        sink = FileSink(file, 200_000)
        ended = pump(
            channel_over(ours),
            deadline=time.monotonic() + 5,
            stdout=sink,
            stderr=CappedBuffer(10),
        )
    assert ended is StreamEnd.EOF
    assert (tmp_path / "out.bin").read_bytes() == b"a" * 200_000
    assert sink.dropped == 100_000


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory):
    """A self-signed certificate, made with openssl, for a loopback TLS connection."""
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


def _tls_sockets(key, cert):
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    client_ctx.check_hostname = False
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[ssl.SSLSocket] = []
    thread = threading.Thread(
        target=lambda: accepted.append(
            server_ctx.wrap_socket(listener.accept()[0], server_side=True)
        )
    )
    thread.start()
    client = client_ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
    thread.join()
    listener.close()
    return client, accepted[0]


def test_over_tls_decrypted_bytes_are_seen_and_stdin_needs_no_half_close(tls_pair):
    """Many small frames arrive in one TLS record burst: select() alone would miss the ones
    already decrypted; the channel must deliver all of them, and must not tear TLS down to
    signal the end of stdin."""
    client, server = _tls_sockets(*tls_pair)
    payload = b"p" * 3_000_000
    frames = b"".join(frame(1, b"%05d\n" % i) for i in range(2000))
    got = bytearray()

    def serve():
        while len(got) < len(payload):
            got.extend(server.recv(65536))
        server.sendall(frames)
        server.sendall(frame(2, b"done"))
        server.close()

    threading.Thread(target=serve).start()
    channel = channel_over(client)
    ended, out, err = drive(channel, deadline_s=20, limits=(1 << 20, 100), stdin=payload)
    assert ended is StreamEnd.EOF
    assert bytes(got) == payload
    assert channel.close_stdin() is False  # TLS cannot half-close; callers frame their input
    assert bytes(out.data) == b"".join(b"%05d\n" % i for i in range(2000))
    assert bytes(err.data) == b"done"


def _renumbered_above_1024(sock: socket.socket) -> socket.socket:
    """The same connection on a descriptor numbered over 1024, as in an app process holding
    hundreds of sessions' runner sockets (select() cannot watch such a descriptor)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"this process may open only {hard} files")
    if soft != resource.RLIM_INFINITY and soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    high = os.dup2(sock.fileno(), 1100)
    sock.close()
    return socket.socket(fileno=high)


def test_a_connection_on_a_descriptor_over_1024_still_sends_stdin_and_reads_output():
    ours, theirs = socket.socketpair()
    ours = _renumbered_above_1024(ours)
    assert ours.fileno() >= 1024
    got = bytearray()

    def serve():
        while len(got) < 200_000:
            got.extend(theirs.recv(65536))
        theirs.sendall(frame(1, b"read %d bytes" % len(got)))
        theirs.close()

    threading.Thread(target=serve).start()
    started = time.monotonic()
    ended, out, _ = drive(channel_over(ours), stdin=b"s" * 200_000)
    assert ended is StreamEnd.EOF
    assert bytes(out.data) == b"read 200000 bytes"
    assert time.monotonic() - started < 2


def test_a_partial_frame_header_waits_for_the_rest_without_spinning():
    ours, theirs = socket.socketpair()
    whole = frame(1, b"late")
    theirs.sendall(whole[:3])
    channel = channel_over(ours)
    readable, _ = channel.wait(1.0)
    assert readable
    assert channel.read() == []
    cpu_before = time.process_time()
    started = time.monotonic()
    readable, _ = channel.wait(0.5)
    assert not readable  # nothing new arrived: the wait is a real one, not a hot loop
    assert time.monotonic() - started >= 0.45
    assert time.process_time() - cpu_before < 0.2
    theirs.sendall(whole[3:])
    assert channel.wait(1.0)[0]
    assert channel.read() == [(1, b"late")]


def test_a_connection_closed_under_a_waiting_reader_ends_its_stream():
    ours, theirs = socket.socketpair()
    channel = channel_over(ours)
    channel.close()  # e.g. the app shutting down while a command streams
    readable, writable = channel.wait(1.0, write=True)
    assert (readable, writable) == (True, False)
    assert channel.read() is None  # the end of the stream, not an exception
    theirs.close()
