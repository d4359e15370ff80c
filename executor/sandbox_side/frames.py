"""The runner's end of the frames (protocol.py): writing them to fd 1, reading the host's from
fd 0, large messages in parts, and file-like views of a file request's data.

Runs INSIDE the sandbox, as the module `sandbox_frames`. Standard library only.
"""

import io
import json
import os
import sys

from sandbox_protocol import CHUNK, DATA, EOF, HEADER, KILL, OUT, PART_SIZE, REQUEST


def send(kind, fid, payload=b""):
    data = HEADER.pack(kind, fid, len(payload)) + payload
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


def send_json(kind, fid, value):
    send(kind, fid, json.dumps(value).encode())


def send_message(part_kind, kind, fid, payload):
    """A payload of any size: PART frames with its first pieces, then `kind` with the rest."""
    while len(payload) > PART_SIZE:
        send(part_kind, fid, payload[:PART_SIZE])
        payload = payload[PART_SIZE:]
    send(kind, fid, payload)


class Parts:
    """Pieces of large messages, per pipe, until their last frame arrives; bounded."""

    def __init__(self):
        self.pending = {}

    def add(self, fid, payload, limit):
        """Keep a piece; False when the message grew past `limit` (it is dropped)."""
        held = self.pending.setdefault(fid, bytearray())
        held += payload
        if len(held) > limit:
            del self.pending[fid]
            return False
        return True

    def finish(self, fid, payload, limit):
        """The whole message, or None when it is over `limit`."""
        held = self.pending.pop(fid, bytearray())
        if len(held) + len(payload) > limit:
            return None
        return bytes(held) + payload

    def drop(self, fid):
        self.pending.pop(fid, None)


class HostReader:
    """Frames from the host on fd 0."""

    def __init__(self):
        self.buffer = bytearray()

    def fill(self):
        chunk = os.read(0, 1 << 20)
        if not chunk:
            sys.exit(0)  # the host went away
        self.buffer += chunk

    def frames(self):
        while len(self.buffer) >= HEADER.size:
            kind, fid, length = HEADER.unpack_from(self.buffer)
            if len(self.buffer) < HEADER.size + length:
                return
            payload = bytes(self.buffer[HEADER.size : HEADER.size + length])
            del self.buffer[: HEADER.size + length]
            yield kind, fid, payload

    def next_frame(self):
        while True:
            for frame in self.frames():
                return frame
            self.fill()


class FileStdin(io.RawIOBase):
    """stdin of a file request: DATA frames pulled from the host on demand. Frames of pipes
    that ended with an earlier request are skipped; any other request frame ends the input."""

    def __init__(self, host, rid):
        self.host, self.rid, self.pending, self.done = host, rid, b"", False

    def readable(self):
        return True

    def readinto(self, buffer):
        while not self.pending and not self.done:
            kind, rid, payload = self.host.next_frame()
            if kind not in (REQUEST, KILL, DATA, EOF):
                continue  # a late frame of a pipe of an earlier request
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
