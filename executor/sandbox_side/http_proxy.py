"""What clients send to the sandbox's HTTP proxy, parsed; and what the proxy answers.

This file runs INSIDE the sandbox, in the resident runner (Python 3.11, standard library only);
host code never imports it (tests `exec` its source). The proxy on the sandbox's loopback reads
a request head, asks the host over the runner's channel whether `host:port` may be reached, and
then only moves bytes. Two request forms:

- `CONNECT host:port HTTP/1.x` opens a tunnel (pip, requests, curl and others use it for every
  https:// URL); the proxy answers `CONNECTED` once the host has connected, then relays bytes.
  TLS is not intercepted: the decision is on the requested host and port.
- `GET http://host[:port]/path HTTP/1.1` (any method, absolute URI) is plain HTTP: the head is
  rewritten to origin form (`GET /path HTTP/1.1`), `Host` is set from the URI (so a request
  cannot name one host to the policy and another to the server), proxy and hop-by-hop headers
  are dropped and `Connection: close` is set: one origin request per proxy connection.

The parser is strict (CRLF only, no NUL or control bytes, bounded head, valid ports): anything
else is a `ProxyError` (answered with `http_answers.error_response`). The host checks the host name
and port again; nothing here is trusted by it.
"""

import ipaddress
import re
from dataclasses import dataclass

MAX_HEAD = 16 * 1024  # bytes of request line and headers, CRLFs included
MAX_HEADERS = 100

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_BARE_LF = re.compile(rb"(?<!\r)\n")
_BARE_CR = re.compile(rb"\r(?!\n)")
_VALUE_BAD = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Hop-by-hop headers (RFC 9110 7.6.1) and the proxy's own: never passed to the origin.
_DROPPED = {
    "connection",
    "host",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
}


@dataclass(frozen=True)
class Request:
    """A proxy request, ready to be asked about and carried.

    `host` is what the host's policy gets: a lowercase name, an IPv4 address as written, or an
    IPv6 address without brackets. `head` is the head to send to the origin (plain HTTP only;
    empty for a tunnel). `consumed` bytes of the buffer were the client's head: the bytes after
    them already belong to the connection (a request body, or early TLS bytes).
    """

    tunnel: bool
    method: str
    host: str
    port: int
    head: bytes
    consumed: int


@dataclass(frozen=True)
class ProxyError:
    """A request the proxy refuses before asking the host: `status` and a sentence why."""

    status: int
    message: str


class _Bad(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def parse_head(buffer: bytes) -> Request | ProxyError | None:
    """Parse the head a client sent to the proxy.

    Returns None while the head is incomplete (read more and call again with everything read
    so far), the `Request` once it is complete, or a `ProxyError` for a head that is malformed
    or too large (at most `MAX_HEAD` bytes).
    """
    try:
        return _parse(bytes(buffer))
    except _Bad as bad:
        return ProxyError(bad.status, bad.message)


def _parse(buffer: bytes) -> Request | None:
    end = buffer.find(b"\r\n\r\n")
    head = buffer if end < 0 else buffer[:end]
    if b"\0" in head:
        raise _Bad("the request contains a NUL byte")
    if _BARE_LF.search(head) or _BARE_CR.search(head.rstrip(b"\r")):
        raise _Bad("request lines must end with CRLF")
    if end < 0:
        if len(buffer) >= MAX_HEAD:
            raise _Bad(f"the request head is larger than {MAX_HEAD // 1024} KiB", 431)
        return None
    if end + 4 > MAX_HEAD:
        raise _Bad(f"the request head is larger than {MAX_HEAD // 1024} KiB", 431)
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = _request_line(lines[0])
    headers = _headers(lines[1:])
    if method == "CONNECT":
        host, port = _authority(target, None)
        return Request(True, method, host, port, b"", end + 4)
    host, port, origin = _absolute(target)
    new_head = _rewrite(method, origin, version, host, port, headers)
    return Request(False, method, host, port, new_head, end + 4)


def _request_line(line: str) -> tuple[str, str, str]:
    if not line:
        raise _Bad("the request line is empty")
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise _Bad("the request line must be METHOD TARGET HTTP/1.1")
    method, target, version = parts
    if not _TOKEN.match(method):
        raise _Bad("the request method is not a token")
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise _Bad("only HTTP/1.0 and HTTP/1.1 requests are supported")
    if any(not 0x21 <= ord(ch) <= 0x7E for ch in target):
        raise _Bad("the request target has characters that are not printable ASCII")
    return method, target, version


def _headers(lines: list[str]) -> list[tuple[str, str]]:
    if len(lines) > MAX_HEADERS:
        raise _Bad(f"more than {MAX_HEADERS} header lines", 431)
    headers = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            raise _Bad("folded header lines are not supported")
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.match(name):
            raise _Bad("a header line is not NAME: value")
        value = value.strip(" \t")
        if _VALUE_BAD.search(value):
            raise _Bad(f"the {name} header has control characters")
        headers.append((name, value))
    return headers


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or not 1 <= int(text) <= 65535:
        raise _Bad("the port must be a number from 1 to 65535")
    return int(text)


def _authority(text: str, default_port: int | None) -> tuple[str, int]:
    """(host, port) of `host:port`, `[v6]:port` (and without a port when there is a default)."""
    if "@" in text:
        raise _Bad("user names and passwords in the URL are not supported")
    if "/" in text:
        raise _Bad("the target must be host:port, not a URL")
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise _Bad("an IPv6 address lacks its closing ']'")
        host, rest = text[1:close], text[close + 1 :]
        try:
            address = ipaddress.IPv6Address(host)
        except ValueError:
            raise _Bad("the address in brackets is not an IPv6 address") from None
        if address.scope_id:
            raise _Bad("scoped IPv6 addresses are not supported")
        host = host.lower()
        if rest and not rest.startswith(":"):
            raise _Bad("the host is followed by something that is not :port")
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text_raw = text.rpartition(":")
        if not sep:
            host, port_text_raw = text, None
        if host and ":" in host:
            raise _Bad("write IPv6 addresses in brackets, as in [::1]:443")
        port_text = port_text_raw
        if not host:
            raise _Bad("the request names no host")
        if not _NAME.match(host) or len(host) > 253:
            raise _Bad("the host name has characters a host name cannot have")
        host = host.lower()
    if port_text is None:
        if default_port is None:
            raise _Bad("CONNECT needs host:port")
        return host, default_port
    return host, _port(port_text)


def _absolute(target: str) -> tuple[str, int, str]:
    """(host, port, origin-form target) of an absolute http:// URI."""
    scheme, sep, rest = target.partition("://")
    if not sep:
        raise _Bad(
            "this is a proxy: send an absolute URI (http://host/path) or CONNECT host:port",
        )
    if scheme.lower() == "https":
        raise _Bad("send https:// URLs with CONNECT (set HTTPS_PROXY), not as a plain request")
    if scheme.lower() != "http":
        raise _Bad(f"the proxy carries http:// and CONNECT only, not {scheme[:20]}://")
    if "#" in rest:
        raise _Bad("a request target cannot contain a fragment (#)")
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:]
    host, port = _authority(authority, 80)
    origin = path if path.startswith("/") else "/" + path
    return host, port, origin


def _rewrite(
    method: str, origin: str, version: str, host: str, port: int, headers: list[tuple[str, str]]
) -> bytes:
    listed = set()
    lengths = set()
    chunked = False
    for name, value in headers:
        lowered = name.lower()
        if lowered == "connection":
            listed |= {v.strip().lower() for v in value.split(",")}
        elif lowered == "content-length":
            if not (value.isascii() and value.isdigit()):
                raise _Bad("Content-Length is not a number")
            lengths.add(int(value))
        elif lowered == "transfer-encoding":
            chunked = True
    if len(lengths) > 1 or (lengths and chunked):
        raise _Bad("the request has conflicting Content-Length / Transfer-Encoding headers")
    shown = f"[{host}]" if ":" in host else host
    lines = [f"{method} {origin} {version}", f"Host: {shown}" + (f":{port}" if port != 80 else "")]
    for name, value in headers:
        lowered = name.lower()
        if lowered not in _DROPPED and lowered not in listed:
            lines.append(f"{name}: {value}")
    lines += ["Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


def close_response(head: bytes) -> bytes:
    """A plain-HTTP response head (through its blank line) made to say `Connection: close`:
    the proxy carries one request per connection, so a client must not send another on it."""
    lines = head[: head.find(b"\r\n\r\n")].split(b"\r\n")
    kept = [lines[0]] + [
        line
        for line in lines[1:]
        if line.split(b":", 1)[0].strip().lower()
        not in (b"connection", b"keep-alive", b"proxy-connection")
    ]
    return b"\r\n".join([*kept, b"Connection: close"]) + b"\r\n\r\n"
