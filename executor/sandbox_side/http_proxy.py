"""Parsing what a client sends an HTTP proxy (placeholder; the full parser replaces it).

Runs INSIDE the sandbox, as the module `sandbox_http_proxy`. Standard library only.
"""

import re

HEAD_MAX = 16 << 10
_LINE = re.compile(rb"^([A-Z]+) (\S+) HTTP/1\.[01]$")


class ProxyError:
    def __init__(self, status, reason, body):
        self.status, self.reason, self.body = status, reason, body

    def response(self):
        return response(self.status, self.reason, self.body)


class Request:
    def __init__(self, mode, host, port, upstream):
        self.mode, self.host, self.port, self.upstream = mode, host, port, upstream


def response(status, reason, body):
    reason = reason.encode("ascii", "replace")[:200].replace(b"\r", b" ").replace(b"\n", b" ")
    data = (body if isinstance(body, str) else str(body)).encode() + b"\n"
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n" % (status, reason, len(data))
    ) + data


def parse_head(buffer):
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > HEAD_MAX:
            return ProxyError(431, "Request head too large", "The request head is too large.")
        return None
    lines = buffer[:end].split(b"\r\n")
    match = _LINE.match(lines[0])
    if not match:
        return ProxyError(400, "Malformed request line", "The request line is malformed.")
    method, target = match.groups()
    rest = buffer[end + 4 :]
    if method == b"CONNECT":
        host, _, port = target.rpartition(b":")
        host = host.strip(b"[]").decode("ascii", "replace")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            return ProxyError(400, "Bad CONNECT target", "CONNECT needs host:port.")
        return Request("connect", host, int(port), rest)
    if not target.startswith(b"http://"):
        return ProxyError(400, "Only http:// URLs or CONNECT", "Use CONNECT for https.")
    hostport, _slash, path = target[7:].partition(b"/")
    host, _colon, port = hostport.rpartition(b":") if b":" in hostport else (hostport, b"", b"80")
    if not host or not port.isdigit():
        return ProxyError(400, "Bad URL", "The URL has no valid host.")
    headers = [
        line
        for line in lines[1:]
        if not line.lower().startswith((b"proxy-connection:", b"proxy-authorization:"))
        and not line.lower().startswith(b"connection:")
    ]
    head = b"\r\n".join([method + b" /" + path + b" HTTP/1.1", *headers, b"Connection: close"])
    return Request("http", host.decode("ascii", "replace"), int(port), head + b"\r\n\r\n" + rest)
