"""What the sandbox's HTTP proxy answers a client itself: a refusal, a malformed request, the
tunnel's opening. Reason phrases are one line of ASCII naming the host and why, since pip,
requests and curl often show nothing else (a 403 always names EXECUTOR_EGRESS_ALLOW).

Runs INSIDE the sandbox, as the module `sandbox_http_answers`. Standard library only.
"""

MAX_PHRASE = 200  # characters of a reason phrase
VARIABLE = "EXECUTOR_EGRESS_ALLOW"
CONNECTED = b"HTTP/1.1 200 Connection established\r\n\r\n"


def _phrase(text: str, limit: int = MAX_PHRASE) -> str:
    """One line of printable ASCII, at most `limit` characters."""
    cleaned = "".join(ch if 0x20 <= ord(ch) < 0x7F else "?" for ch in str(text))
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


def response(status: int, reason: str, body: str | None = None) -> bytes:
    """A complete HTTP/1.1 response the proxy sends and then closes the connection.

    `reason` becomes the reason phrase (one line of ASCII, at most 200 characters: many
    clients show only that); `body` (default: the reason) is sent as text/plain.
    """
    if not isinstance(status, int) or not 100 <= status <= 599:
        status = 500
    phrase = _phrase(reason) or "Error"
    data = ((phrase if body is None else body).rstrip("\n") + "\n").encode("utf-8")
    head = (
        f"HTTP/1.1 {status} {phrase}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + data


def _target(host: str, port: int) -> str:
    host = _phrase(host, 60)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_VERBS = {403: "refused", 429: "refused", 502: "failed", 503: "unavailable", 504: "timed out"}
_ADVICE = {
    403: (
        "Hosts are allowed by EXECUTOR_EGRESS_ALLOW on the machine that runs the sandbox; "
        "ask its operator to add this one."
    ),
    429: "Close some connections and try again.",
    502: "The host is allowed, but the connection could not be made.",
    503: "The sandbox's session is ending.",
    504: "The host is allowed, but it did not answer in time.",
}


def refusal(status: int, host: str, port: int, reason: str) -> bytes:
    """The response for an egress request the host refused or could not connect.

    The reason phrase names the host and why ("Egress to evil.example:443 refused: not in
    EXECUTOR_EGRESS_ALLOW"); a 403 always names EXECUTOR_EGRESS_ALLOW.
    """
    start = f"Egress to {_target(host, port)} {_VERBS.get(status, 'failed')}: "
    suffix = f" ({VARIABLE})" if status == 403 and VARIABLE not in reason else ""
    why = _phrase(reason, max(MAX_PHRASE - len(start) - len(suffix), 20))
    phrase = start + why + suffix
    body = f"{phrase}. {_ADVICE.get(status, '')}".strip()
    return response(status, phrase, body)


def error_response(error) -> bytes:
    """The response for a request the proxy could not parse."""
    phrase = "Bad proxy request: " + error.message
    return response(error.status, phrase, phrase + ".")
