"""The runner protocol, version 2: the one description of what travels between host and runner.

Constants only (the host imports this module; the sandbox gets its source). The host starts the
runner over one long-lived exec (`python3 -I -S -u -c <bootstrap>`); the bootstrap reads the
sandbox-side modules from stdin (see `executor/sandbox_side/__init__.py`), and from then on the
exec's stdin and stdout carry frames, both ways: a 9-byte header `>BII` (kind, id, payload
length), then the payload.

Requests (id = the request id, chosen by the host; one request runs at a time):
  host -> runner  REQUEST  JSON {"op": "bash", "cmd", "timeout", "limit", "flood"}
                           | {"op": "python", "code", "timeout", "limit"} | {"op": "reset_python"}
                           | {"op": "file", "name", "args"} (stdin: DATA frames, then EOF)
                  KILL     kill the running request's processes
                  DATA/EOF stdin bytes of a file request, and their end
  runner -> host  HELLO    JSON {"version": 2, "pid", "bridge": bool, "proxy": port | 0}, once
                  ACK      the request is about to run
                  OUT/ERR  output bytes of the request
                  DONE     JSON {"exit_code", "timed_out", "killed", "python_lost", "oom",
                           "flooded", "sent", "duration_s", ...} ends it

Pipes (id = a pipe id, chosen by the runner, never reused): what sandbox processes open while a
request runs. A pipe exists only during its request: the runner closes every pipe before DONE
and refuses connections between requests; the host ends a request's pipes when it ends.
  Calls (code mode): a process connects to the runner's unix socket ($SANDBOX_BRIDGE), sends one
  message (4-byte length + JSON {"server", "tool", "arguments"}) and reads one answer the same
  way (JSON {"ok": true, "value"} | {"ok": false, "error"}).
    runner -> host  CALL    the message;   host -> runner  REPLY  the answer
  Connections (egress): a process talks HTTP-proxy to 127.0.0.1:<proxy> ($HTTP_PROXY); the
  runner reads the request head, then asks the host to connect.
    runner -> host  OPEN    JSON {"mode": "connect" | "http", "host", "port"}
    host -> runner  OPENED  connected;   REFUSED  JSON {"status", "reason", "body"} (the runner
                            answers the client with that HTTP error and closes)
    both ways       PIPE_DATA bytes, PIPE_CREDIT 4-byte count of bytes the receiver passed on
                    (the sender may send that many more: each direction starts with WINDOW),
                    PIPE_EOF half-close, PIPE_CLOSE abort (payload: the reason in words)
  A message bigger than one frame (CALL, REPLY) is sent as PART frames carrying its first bytes,
  then the frame of its kind carrying the rest.

The host trusts none of this: it checks kinds, sizes, JSON and ids, caps output whatever the
runner claims, and bounds every wait; the runner is the sandbox user's process.
"""

import struct

VERSION = 2
HEADER = struct.Struct(">BII")  # kind, request or pipe id, payload length

# host -> runner
REQUEST, KILL, DATA, EOF = 1, 2, 3, 4
REPLY, OPENED, REFUSED = 5, 6, 7
TO_RUNNER_DATA, TO_RUNNER_CREDIT, TO_RUNNER_EOF, TO_RUNNER_CLOSE, TO_RUNNER_PART = 8, 9, 20, 21, 22

# runner -> host
OUT, ERR, DONE, HELLO, ACK = 10, 11, 12, 13, 14
CALL, OPEN = 30, 31
TO_HOST_DATA, TO_HOST_CREDIT, TO_HOST_EOF, TO_HOST_CLOSE, TO_HOST_PART = 32, 33, 34, 35, 36

CHUNK = 65536  # bytes of output or pipe data per frame
MAX_FRAME = 1 << 20  # the largest frame payload either side accepts
PART_SIZE = 512 << 10  # pieces of a large message
WINDOW = 2 << 20  # bytes in flight per pipe and direction before a credit is needed
CALL_ARGS_MAX = 4 << 20  # a call's message (JSON), runner -> host
CALL_RESULT_MAX = 16 << 20  # a call's answer (JSON), host -> runner
HEAD_MAX = 16 << 10  # an HTTP proxy request head
MAX_PIPES = 256  # pipes open at once in one sandbox (calls and connections)
