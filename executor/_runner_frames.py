"""The runner's end of the frame protocol (described in `_runner.py`): frame kinds, reading
frames from the host on fd 0, writing them to fd 1, and file-like views of a request's data.

Runs INSIDE the sandbox: the host sends this source with the runner's, which executes it (the
bootstrap in `runner.py`). The host imports the same constants, so both ends agree on one
definition. Standard library only.
"""

import io
import json
import os
import struct
import sys

HEADER = struct.Struct(">BII")  # kind, request id, payload length
REQUEST, KILL, DATA, EOF = 1, 2, 3, 4  # host -> runner
OUT, ERR, DONE, HELLO, ACK = 10, 11, 12, 13, 14  # runner -> host
CHUNK = 65536


def send(kind, rid, payload=b""):
    data = HEADER.pack(kind, rid, len(payload)) + payload
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


def send_json(kind, rid, value):
    send(kind, rid, json.dumps(value).encode())


class HostReader:
    """Frames from the host on fd 0."""

    def __init__(self):
        self.buffer = b""

    def fill(self):
        chunk = os.read(0, CHUNK)
        if not chunk:
            sys.exit(0)  # the host went away
        self.buffer += chunk

    def frames(self):
        while len(self.buffer) >= HEADER.size:
            kind, rid, length = HEADER.unpack_from(self.buffer)
            if len(self.buffer) < HEADER.size + length:
                return
            payload = self.buffer[HEADER.size : HEADER.size + length]
            self.buffer = self.buffer[HEADER.size + length :]
            yield kind, rid, payload

    def next_frame(self):
        while True:
            for frame in self.frames():
                return frame
            self.fill()


class FileStdin(io.RawIOBase):
    """stdin of a file request: DATA frames pulled from the host on demand."""

    def __init__(self, host, rid):
        self.host, self.rid, self.pending, self.done = host, rid, b"", False

    def readable(self):
        return True

    def readinto(self, buffer):
        while not self.pending and not self.done:
            kind, rid, payload = self.host.next_frame()
            if rid != self.rid or kind == EOF:
                self.done = True
            elif kind == DATA:
                self.pending = payload
        n = min(len(buffer), len(self.pending))
        buffer[:n], self.pending = self.pending[:n], self.pending[n:]
        return n


class FrameWriter(io.RawIOBase):
    """stdout of a file request: sent as OUT frames."""

    def __init__(self, rid):
        self.rid = rid

    def writable(self):
        return True

    def write(self, data):
        data = bytes(data)
        for start in range(0, len(data), CHUNK):
            send(OUT, self.rid, data[start : start + CHUNK])
        return len(data)
