"""The sandbox proxy's request parsing and answers, with the heads real clients send.

`executor/sandbox_side/http_proxy.py` runs inside the sandbox, so host code never imports it:
its source is run with `exec` in a namespace of its own, as the runner runs it there.
"""

from __future__ import annotations

import types

import pytest

from executor.egress import Allowlist
from executor.sandbox_side import source


@pytest.fixture(scope="module")
def proxy():
    namespace: dict = {}
    for name in ("http_proxy", "http_answers"):  # the parser and the proxy's own answers
        module: dict = {"__name__": f"sandbox_{name}"}
        # dont_inherit: this test module's `from __future__` must not change the compile.
        exec(compile(source(name), name, "exec", dont_inherit=True), module)
        namespace.update(module)
    return types.SimpleNamespace(**namespace)


def parse(proxy, head: bytes):
    return proxy.parse_head(head)


# -- what clients send ---------------------------------------------------------------------

PIP_CONNECT = b"CONNECT pypi.org:443 HTTP/1.0\r\n\r\n"
CURL_CONNECT = (
    b"CONNECT files.pythonhosted.org:443 HTTP/1.1\r\nHost: files.pythonhosted.org:443\r\n"
    b"User-Agent: curl/7.88.1\r\nProxy-Connection: Keep-Alive\r\n\r\n"
)
REQUESTS_CONNECT = (
    b"CONNECT pypi.org:443 HTTP/1.1\r\nHost: pypi.org:443\r\n"
    b"User-Agent: python-requests/2.32.3\r\n\r\n"
)
PIP_PLAIN = (
    b"GET http://127.0.0.1:8000/simple/tiny/ HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
    b'User-Agent: pip/23.0.1 {"ci":null}\r\nAccept-Encoding: gzip, deflate\r\nAccept: text/html\r\n'
    b"Connection: keep-alive\r\nCache-Control: max-age=0\r\n\r\n"
)
CURL_PLAIN = (
    b"POST http://Example.org/upload?x=1&y=2 HTTP/1.1\r\nHost: example.org\r\n"
    b"User-Agent: curl/7.88.1\r\nAccept: */*\r\nProxy-Connection: Keep-Alive\r\n"
    b"Proxy-Authorization: Basic c2VjcmV0OnNlY3JldA==\r\nContent-Length: 5\r\n"
    b"Content-Type: text/plain\r\n\r\nhello"
)


@pytest.mark.parametrize(
    ("head", "host"),
    [
        (PIP_CONNECT, "pypi.org"),
        (CURL_CONNECT, "files.pythonhosted.org"),
        (REQUESTS_CONNECT, "pypi.org"),
    ],
)
def test_connect_requests_open_tunnels(proxy, head, host):
    request = parse(proxy, head)
    assert isinstance(request, proxy.Request)
    assert (request.tunnel, request.method, request.host, request.port) == (
        True,
        "CONNECT",
        host,
        443,
    )
    assert request.head == b""
    assert request.consumed == len(head)


def test_bytes_after_the_head_belong_to_the_connection(proxy):
    client_hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
    request = parse(proxy, PIP_CONNECT + client_hello)
    assert (PIP_CONNECT + client_hello)[request.consumed :] == client_hello


def test_an_incomplete_head_asks_for_more(proxy):
    for cut in range(len(PIP_CONNECT)):
        assert parse(proxy, PIP_CONNECT[:cut]) is None, cut
    assert isinstance(parse(proxy, PIP_CONNECT), proxy.Request)


def test_a_plain_request_is_rewritten_to_origin_form(proxy):
    request = parse(proxy, PIP_PLAIN)
    assert (request.tunnel, request.host, request.port) == (False, "127.0.0.1", 8000)
    lines = request.head.decode().split("\r\n")
    assert lines[0] == "GET /simple/tiny/ HTTP/1.1"
    assert lines[1] == "Host: 127.0.0.1:8000"
    assert "Accept-Encoding: gzip, deflate" in lines
    assert 'User-Agent: pip/23.0.1 {"ci":null}' in lines
    assert "Connection: keep-alive" not in lines
    assert lines[-3:] == ["Connection: close", "", ""]


def test_proxy_headers_are_dropped_and_the_body_is_left_alone(proxy):
    request = parse(proxy, CURL_PLAIN)
    head = request.head.decode()
    assert head.startswith("POST /upload?x=1&y=2 HTTP/1.1\r\nHost: example.org\r\n")
    assert "Proxy-" not in head
    assert "c2VjcmV0" not in head
    assert "Content-Length: 5\r\n" in head
    assert CURL_PLAIN[request.consumed :] == b"hello"


def test_host_comes_from_the_uri_not_from_a_header(proxy):
    """Otherwise a request could pass the policy for one host and reach a vhost of another."""
    request = parse(proxy, b"GET http://allowed.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n")
    assert request.host == "allowed.example"
    assert b"evil" not in request.head
    assert request.head.count(b"Host:") == 1


def test_headers_named_by_connection_are_dropped(proxy):
    head = (
        b"GET http://a.example/ HTTP/1.1\r\nConnection: X-Secret, Upgrade\r\n"
        b"X-Secret: 1\r\nUpgrade: h2c\r\nX-Keep: 2\r\n\r\n"
    )
    rewritten = parse(proxy, head).head
    assert b"X-Secret" not in rewritten
    assert b"Upgrade" not in rewritten
    assert b"X-Keep: 2" in rewritten


@pytest.mark.parametrize(
    ("target", "host", "port", "origin", "host_header"),
    [
        ("http://a.example", "a.example", 80, "/", "a.example"),
        ("http://a.example?q=1", "a.example", 80, "/?q=1", "a.example"),
        ("HTTP://A.Example:8080/x", "a.example", 8080, "/x", "a.example:8080"),
        ("http://[::1]:8080/x", "::1", 8080, "/x", "[::1]:8080"),
        ("http://2130706433/", "2130706433", 80, "/", "2130706433"),
    ],
)
def test_absolute_uris(proxy, target, host, port, origin, host_header):
    request = parse(proxy, f"GET {target} HTTP/1.0\r\n\r\n".encode())
    assert (request.host, request.port) == (host, port)
    assert request.head.startswith(f"GET {origin} HTTP/1.0\r\nHost: {host_header}\r\n".encode())


# -- hostile and malformed heads ------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "status", "words"),
    [
        (b"CONNECT pypi.org:443 HTTP/1.0\n\n", 400, "CRLF"),
        (b"CONNECT pypi.org:443 HTTP/1.0\r\nHost: x\n\r\n\r\n", 400, "CRLF"),
        (b"CONNECT pypi.org:443 HTTP/1.0\rX\r\n\r\n", 400, "CRLF"),
        (b"CONNECT pypi.org\x00:443 HTTP/1.0\r\n\r\n", 400, "NUL"),
        (b"CONNECT pypi.org:443 HTTP/1.0\r\nX: a\x00b\r\n\r\n", 400, "NUL"),
        (b"CONNECT pypi.org:443\r\n\r\n", 400, "METHOD TARGET"),
        (b"CONNECT  pypi.org:443 HTTP/1.0\r\n\r\n", 400, "METHOD TARGET"),
        (b"CONNECT pypi.org:443 HTTP/2.0\r\n\r\n", 400, "HTTP/1.0 and HTTP/1.1"),
        (b"CONNECT pypi.org HTTP/1.1\r\n\r\n", 400, "host:port"),
        (b"CONNECT pypi.org:0 HTTP/1.1\r\n\r\n", 400, "1 to 65535"),
        (b"CONNECT pypi.org:65536 HTTP/1.1\r\n\r\n", 400, "1 to 65535"),
        (b"CONNECT pypi.org:-1 HTTP/1.1\r\n\r\n", 400, "1 to 65535"),
        (b"CONNECT pypi.org:44x HTTP/1.1\r\n\r\n", 400, "1 to 65535"),
        (b"CONNECT :443 HTTP/1.1\r\n\r\n", 400, "no host"),
        (b"CONNECT ::1:443 HTTP/1.1\r\n\r\n", 400, "brackets"),
        (b"CONNECT [::1 HTTP/1.1\r\n\r\n", 400, "closing"),
        (b"CONNECT [not-v6]:80 HTTP/1.1\r\n\r\n", 400, "not an IPv6"),
        (b"CONNECT [fe80::1%25eth0]:80 HTTP/1.1\r\n\r\n", 400, "scoped"),
        (b"CONNECT user@pypi.org:443 HTTP/1.1\r\n\r\n", 400, "passwords"),
        (b"CONNECT http://pypi.org:443 HTTP/1.1\r\n\r\n", 400, "not a URL"),
        (b"CONNECT py$pi.org:443 HTTP/1.1\r\n\r\n", 400, "cannot have"),
        ("CONNECT bücher.de:443 HTTP/1.1\r\n\r\n".encode(), 400, "printable ASCII"),
        (b"C{}NNECT pypi.org:443 HTTP/1.1\r\n\r\n", 400, "token"),
        (b"GET /simple/ HTTP/1.1\r\nHost: pypi.org\r\n\r\n", 400, "this is a proxy"),
        (b"OPTIONS * HTTP/1.1\r\n\r\n", 400, "this is a proxy"),
        (b"GET https://pypi.org/simple/ HTTP/1.1\r\n\r\n", 400, "CONNECT"),
        (b"GET ftp://pypi.org/ HTTP/1.1\r\n\r\n", 400, "http:// and CONNECT only"),
        (b"GET http:///path HTTP/1.1\r\n\r\n", 400, "no host"),
        (b"GET http://:80/ HTTP/1.1\r\n\r\n", 400, "no host"),
        (b"GET http://a.example/#frag HTTP/1.1\r\n\r\n", 400, "fragment"),
        (b"GET http://allowed.example@evil.example/ HTTP/1.1\r\n\r\n", 400, "passwords"),
        (b"GET http://a.example:99999/ HTTP/1.1\r\n\r\n", 400, "1 to 65535"),
        (b"GET http://a.example/ HTTP/1.1\r\n folded\r\n\r\n", 400, "folded"),
        (b"GET http://a.example/ HTTP/1.1\r\nNo colon here\r\n\r\n", 400, "NAME: value"),
        (b"GET http://a.example/ HTTP/1.1\r\nBad Name: x\r\n\r\n", 400, "NAME: value"),
        (b"GET http://a.example/ HTTP/1.1\r\nX: a\x01b\r\n\r\n", 400, "control"),
        (
            b"GET http://a.example/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            400,
            "conflicting",
        ),
        (
            b"GET http://a.example/ HTTP/1.1\r\nContent-Length: 1\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            400,
            "conflicting",
        ),
        (b"GET http://a.example/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "not a number"),
        (b"\r\n\r\n", 400, "empty"),
    ],
)
def test_malformed_heads_are_refused_with_a_reason(proxy, head, status, words):
    error = parse(proxy, head)
    assert isinstance(error, proxy.ProxyError), error
    assert error.status == status
    assert words in error.message


def test_a_huge_head_is_refused_without_waiting_for_its_end(proxy):
    head = b"GET http://a.example/ HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 20_000
    error = parse(proxy, head)
    assert error.status == 431
    assert parse(proxy, head[: proxy.MAX_HEAD - 1]) is None
    complete = b"GET http://a.example/ HTTP/1.1\r\nX: " + b"a" * proxy.MAX_HEAD + b"\r\n\r\n"
    assert parse(proxy, complete).status == 431
    many = b"GET http://a.example/ HTTP/1.1\r\n" + b"X: 1\r\n" * 101 + b"\r\n"
    assert parse(proxy, many).status == 431


def test_an_early_bare_lf_is_refused_before_the_head_ends(proxy):
    """A client that sends LF-only lines would otherwise wait forever for CRLFCRLF."""
    assert parse(proxy, b"CONNECT pypi.org:443 HTTP/1.0\n").status == 400
    assert parse(proxy, b"CONNECT pypi.org:443 HTTP/1.0\r") is None


@pytest.mark.parametrize(
    ("head", "host"),
    [
        (b"CONNECT [::1]:80 HTTP/1.1\r\n\r\n", "::1"),
        (b"CONNECT 2130706433:80 HTTP/1.1\r\n\r\n", "2130706433"),
        (b"CONNECT 0x7f.1:80 HTTP/1.1\r\n\r\n", "0x7f.1"),
        (b"CONNECT localhost:80 HTTP/1.1\r\n\r\n", "localhost"),
        (b"GET http://[::ffff:127.0.0.1]:80/ HTTP/1.1\r\n\r\n", "::ffff:127.0.0.1"),
    ],
)
def test_loopback_in_disguise_parses_and_the_host_refuses_it(proxy, head, host):
    """The proxy only checks syntax; the host's policy decides, and refuses each of these."""
    request = parse(proxy, head)
    assert (request.host, request.port) == (host, 80)
    decision = Allowlist.parse("pypi.org,127.0.0.1:8080").decide(request.host, 80, lambda h, p: [])
    assert not decision.allowed
    assert "EXECUTOR_EGRESS_ALLOW" in decision.reason


# -- answers -------------------------------------------------------------------------------


def split(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode("ascii").split("\r\n")
    return status, dict(line.split(": ", 1) for line in lines), body


def test_a_refusal_names_the_host_why_and_the_setting_in_its_reason_phrase(proxy):
    raw = proxy.refusal(403, "evil.example", 443, "not in EXECUTOR_EGRESS_ALLOW")
    status, headers, body = split(raw)
    assert status == "HTTP/1.1 403 Egress to evil.example:443 refused: not in EXECUTOR_EGRESS_ALLOW"
    assert headers["Content-Length"] == str(len(body))
    assert headers["Connection"] == "close"
    assert b"evil.example:443" in body
    assert b"EXECUTOR_EGRESS_ALLOW" in body


def test_a_refusal_for_an_address_adds_the_setting(proxy):
    status, _, _ = split(
        proxy.refusal(403, "rebind.example", 443, "resolves to a private address 10.1.2.3")
    )
    assert status.endswith(
        "refused: resolves to a private address 10.1.2.3 (EXECUTOR_EGRESS_ALLOW)"
    )
    status, _, _ = split(proxy.refusal(403, "::1", 80, "not in EXECUTOR_EGRESS_ALLOW"))
    assert "[::1]:80" in status


@pytest.mark.parametrize(
    ("status", "verb"),
    [(429, "refused"), (502, "failed"), (503, "unavailable"), (504, "timed out")],
)
def test_other_failures_say_what_happened(proxy, status, verb):
    line, _, body = split(proxy.refusal(status, "pypi.org", 443, "something"))
    assert line == f"HTTP/1.1 {status} Egress to pypi.org:443 {verb}: something"
    assert body.startswith(f"Egress to pypi.org:443 {verb}: something.".encode())


def test_reason_phrases_stay_one_short_ascii_line(proxy):
    host = "ü" + "x" * 300 + "\r\nInjected: 1"
    raw = proxy.refusal(403, host, 443, "why\r\nSet-Cookie: a=b " + "y" * 400)
    status, headers, _ = split(raw)
    assert len(status) <= len("HTTP/1.1 403 ") + 200
    assert status.isascii()
    assert "Injected" not in headers
    assert "Set-Cookie" not in headers
    assert status.endswith("(EXECUTOR_EGRESS_ALLOW)")


def test_a_parse_error_answers_400_with_the_reason(proxy):
    error = parse(proxy, b"CONNECT pypi.org HTTP/1.1\r\n\r\n")
    status, _, body = split(proxy.error_response(error))
    assert status == "HTTP/1.1 400 Bad proxy request: CONNECT needs host:port"
    assert body == b"Bad proxy request: CONNECT needs host:port.\n"


def test_the_tunnel_answer(proxy):
    assert proxy.CONNECTED == b"HTTP/1.1 200 Connection established\r\n\r\n"


def test_the_helper_is_standard_library_only():
    imported = {
        line.split()[1].split(".")[0]
        for line in source("http_proxy").splitlines()
        if line.startswith(("import ", "from "))
    }
    assert imported <= {"ipaddress", "re", "dataclasses"}
