"""Which hosts a sandbox may reach through its egress proxy, and at which address.

`Allowlist.parse` reads `EXECUTOR_EGRESS_ALLOW`; `Allowlist.decide(host, port)` answers one
request. The order of the checks is the security argument, so it is written down here:

1. The NAME is checked against the list before anything is resolved. A lookup of a name that
   is not on the list would let sandbox code leak data through the host's DNS resolver
   (`<secret>.attacker.example`), so refused names are never looked up.
2. A name on the list is resolved once, and EVERY address it resolves to is checked: loopback,
   link-local (the cloud metadata address 169.254.169.254 among them), private, shared (CGNAT),
   multicast, unspecified, documentation, benchmarking and other reserved ranges are refused,
   and so are IPv6 forms of them (`::1`, `fe80::/10`, `fc00::/7`, `::ffff:a.b.c.d`, and 6to4,
   Teredo and NAT64 addresses that embed a refused IPv4 address). One bad address refuses the
   name: a rebinding name that answers a public and a private address gets nothing.
3. The connection goes to the addresses that were checked (`Decision.addresses`); nothing is
   resolved a second time, so the answer cannot change between the check and the connect.

Addresses that the ranges refuse are allowed only when an entry names that address literally
(`127.0.0.1:8080`, `[::1]:8080`), for a request of that address or a name that resolves to it.
Hosts written as decimal, octal, hex or short IPv4 (`2130706433`, `0177.0.0.1`, `0x7f.1`,
`127.1`) are IP literals: they are normalised and match only a literal entry of the same
address, never a name. Everything here is pure apart from the resolver, which tests replace.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from settings import ConfigError

logger = logging.getLogger(__name__)

VARIABLE = "EXECUTOR_EGRESS_ALLOW"
DEFAULT_PORTS = frozenset({80, 443})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses the host resolves to (strings). Raises OSError when it cannot.
Resolver = Callable[[str, int], Iterable[str]]

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_HEX = re.compile(r"^0[xX][0-9a-fA-F]*$")

# Refused IPv4 ranges, most specific first, each with the words a person reads.
_V4_RANGES: list[tuple[ipaddress.IPv4Network, str]] = [
    (ipaddress.IPv4Network(net), words)
    for net, words in (
        ("169.254.169.254/32", "the cloud metadata address"),
        ("255.255.255.255/32", "the broadcast address"),
        ("0.0.0.0/8", "an unspecified ('this network') address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a shared (CGNAT) address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "a reserved (IETF protocol) address"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.88.99.0/24", "a reserved (6to4 relay) address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),
    )
]

# Refused IPv6 ranges. Embedding forms (mapped, NAT64, 6to4, Teredo) are judged separately.
_V6_RANGES: list[tuple[ipaddress.IPv6Network, str]] = [
    (ipaddress.IPv6Network(net), words)
    for net, words in (
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("::/96", "a deprecated IPv4-compatible address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        ("100::/64", "a discard-only address"),
        ("2001:db8::/32", "a documentation address"),
        ("3fff::/20", "a documentation address"),
        ("5f00::/16", "a reserved (SRv6) address"),
        ("fc00::/7", "a unique-local (private) address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
    )
]
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")
_IETF_V6 = ipaddress.IPv6Network("2001::/23")
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


@dataclass(frozen=True)
class Decision:
    """The answer to one egress request.

    `addresses` are the checked addresses to dial, in order (when allowed), or what the name
    resolved to (when an address refused it). `reason` is a short phrase without the host
    ("not in EXECUTOR_EGRESS_ALLOW", "resolves to a private address 10.1.2.3"); `status` is the
    HTTP status the proxy answers a refusal with: 403 for the policy, 502 when an allowed name
    does not resolve.
    """

    allowed: bool
    reason: str
    host: str
    port: int
    addresses: tuple[str, ...] = ()
    status: int = 403

    @property
    def address(self) -> str | None:
        """The first address to connect to (or the one that was refused)."""
        return self.addresses[0] if self.addresses else None


@dataclass(frozen=True)
class Allowlist:
    """The parsed `EXECUTOR_EGRESS_ALLOW`: exact names, `*.domain` suffixes, literal addresses,
    each with its ports. Empty means no egress at all."""

    entries: tuple[str, ...] = ()
    names: dict[str, frozenset[int]] = field(default_factory=dict)
    suffixes: dict[str, frozenset[int]] = field(default_factory=dict)  # ".domain" -> ports
    addresses: dict[IPAddress, frozenset[int]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Allowlist:
        """Parse comma-separated entries: `host`, `host:port`, `*.domain[:port]`, IPv4 and
        `[IPv6]` literals with an optional port. Without a port an entry allows 80 and 443.

        Raises:
            ConfigError: an entry is malformed; the message names the variable and the entry.
        """
        entries: list[str] = []
        names: dict[str, set[int]] = {}
        suffixes: dict[str, set[int]] = {}
        addresses: dict[IPAddress, set[int]] = {}
        for raw in text.split(","):
            entry = raw.strip()
            if not entry:
                continue
            try:
                kind, value, ports = _parse_entry(entry)
            except ValueError as exc:
                raise ConfigError(f"{VARIABLE}: entry {entry!r} {exc}; see .env.example") from exc
            table: dict = {"name": names, "suffix": suffixes, "address": addresses}[kind]
            table.setdefault(value, set()).update(ports)
            entries.append(entry)
        return cls(
            entries=tuple(entries),
            names={k: frozenset(v) for k, v in names.items()},
            suffixes={k: frozenset(v) for k, v in suffixes.items()},
            addresses={k: frozenset(v) for k, v in addresses.items()},
        )

    @property
    def enabled(self) -> bool:
        """Whether any egress is allowed at all."""
        return bool(self.entries)

    def describe(self) -> str:
        """The entries as a person reads them (for the UI and `make doctor`)."""
        return ", ".join(self.entries) if self.entries else "no egress"

    def decide(self, host: str, port: int, resolver: Resolver | None = None) -> Decision:
        """Decide whether `host:port` may be reached, and at which addresses.

        The name is checked before it is resolved (a refused name is never looked up); every
        address it resolves to is checked; the returned addresses are the ones to dial.
        """
        if not self.entries:
            return Decision(False, f"egress is off ({VARIABLE} is empty)", host, port)
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            return Decision(False, f"{port!r} is not a valid port", host, 0)
        try:
            ip, name = classify_host(host)
        except ValueError as exc:
            return Decision(False, f"not a valid host ({exc})", str(host)[:255], port)
        if ip is not None:
            return self._decide_address(ip, port)
        return self._decide_name(name, port, resolver or resolve)

    def _literal(self, ip: IPAddress, port: int) -> bool:
        return port in self.addresses.get(ip, ())

    def _decide_address(self, ip: IPAddress, port: int) -> Decision:
        shown = str(ip)
        if self._literal(ip, port):
            return Decision(True, "allowed (a literal entry)", shown, port, (shown,), 200)
        problem = address_problem(ip)
        reason = f"not in {VARIABLE}" + (f" ({problem})" if problem else "")
        if ip in self.addresses:
            allowed = ", ".join(str(p) for p in sorted(self.addresses[ip]))
            reason = f"port {port} is not allowed for {shown} ({VARIABLE} allows {allowed})"
        return Decision(False, reason, shown, port, (shown,))

    def _ports_for(self, name: str) -> frozenset[int] | None:
        ports: set[int] = set(self.names.get(name, ()))
        matched = name in self.names
        for suffix, suffix_ports in self.suffixes.items():
            if name.endswith(suffix):
                ports |= suffix_ports
                matched = True
        return frozenset(ports) if matched else None

    def _decide_name(self, name: str, port: int, resolver: Resolver) -> Decision:
        ports = self._ports_for(name)
        if ports is None:
            return Decision(False, f"not in {VARIABLE}", name, port)
        if port not in ports:
            allowed = ", ".join(str(p) for p in sorted(ports))
            reason = f"port {port} is not allowed for {name} ({VARIABLE} allows {allowed})"
            return Decision(False, reason, name, port)
        try:
            raw = list(resolver(name, port))
        except (OSError, UnicodeError) as exc:
            logger.info("egress: %s did not resolve: %s", name, exc)
            return Decision(False, "could not be resolved", name, port, (), 502)
        found: list[IPAddress] = []
        for text in raw:
            try:
                ip = _normalise(ipaddress.ip_address(text))
            except ValueError:
                return Decision(
                    False, f"resolves to something not an address: {text!r:.60}", name, port
                )
            if ip not in found:
                found.append(ip)
        if not found:
            return Decision(False, "could not be resolved", name, port, (), 502)
        shown = tuple(str(ip) for ip in found)
        for ip in found:
            if self._literal(ip, port):
                continue
            problem = address_problem(ip)
            if problem:
                return Decision(False, f"resolves to {problem}", name, port, (str(ip),))
        return Decision(True, "allowed", name, port, shown, 200)


def resolve(host: str, port: int) -> list[str]:
    """The system resolver: every TCP address of `host`, in the order getaddrinfo gives."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def classify_host(host: str) -> tuple[IPAddress | None, str]:
    """(address, "") for an IP literal in any spelling, else (None, the normalised name).

    Names are lowercased, lose a trailing dot and must be ASCII (IDNA names in their `xn--`
    form). A name whose last label is a number but which is no valid IPv4 address is refused
    rather than handed to a resolver that might read it as one.

    Raises:
        ValueError: not a host name or address; the message says why.
    """
    if not isinstance(host, str) or not host:
        raise ValueError("empty host")
    text = host.strip()
    if text != host or any(ch.isspace() or ord(ch) < 0x21 for ch in text):
        raise ValueError("spaces or control characters in the host")
    if text.startswith("[") or ":" in text:
        inner = text[1:-1] if text.startswith("[") and text.endswith("]") else text
        if "%" in inner:
            raise ValueError("scoped IPv6 addresses (with %zone) are not allowed")
        try:
            return _normalise(ipaddress.IPv6Address(inner)), ""
        except ValueError:
            raise ValueError(f"{text[:60]!r} is not an IPv6 address") from None
    if not text.isascii():
        raise ValueError(f"{_idna_hint(text)}")
    name = text.lower()
    if name.endswith("."):
        name = name[:-1]
    ip = _parse_ipv4(name)
    if ip is not None:
        return ip, ""
    if len(name) > 253 or not name:
        raise ValueError("a host name has at most 253 characters")
    for label in name.split("."):
        if not _LABEL.match(label):
            raise ValueError(f"{label[:63]!r} is not a valid label of a host name")
    return None, name


def address_problem(ip: IPAddress) -> str | None:
    """Why `ip` may not be reached (e.g. "a private address 10.1.2.3"), or None if it is a
    global unicast address."""
    ip = _normalise(ip)
    if isinstance(ip, ipaddress.IPv4Address):
        for net, words in _V4_RANGES:
            if ip in net:
                return f"{words} {ip}"
        return None if ip.is_global else f"a reserved address {ip}"
    for net, words in _V6_RANGES:
        if ip in net:
            return f"{words} {ip}"
    embedded: list[tuple[str, ipaddress.IPv4Address]] = []
    if ip in _NAT64:
        embedded.append(("NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
    elif ip in _SIX_TO_FOUR and ip.sixtofour is not None:
        embedded.append(("6to4", ip.sixtofour))
    elif ip in _TEREDO and ip.teredo is not None:
        embedded.extend(("Teredo", inner) for inner in ip.teredo)
    for kind, inner in embedded:
        inner_problem = address_problem(inner)
        if inner_problem:
            return f"a {kind} address {ip} (embeds {inner_problem})"
    if ip in _NAT64:
        return None
    if ip in _IETF_V6:
        return f"a reserved (IETF protocol) address {ip}"
    if ip not in _GLOBAL_UNICAST or not ip.is_global:
        return f"a reserved address {ip}"
    return None


def _normalise(ip: IPAddress) -> IPAddress:
    """IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is the IPv4 address it maps: one address, one rule."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _parse_ipv4_part(part: str) -> int:
    if _HEX.match(part):
        return int(part[2:] or "0", 16)
    if not part.isdigit() or not part.isascii():
        raise ValueError(f"{part!r} is not a number")
    if len(part) > 1 and part.startswith("0"):
        if any(ch in "89" for ch in part):
            raise ValueError(f"{part!r} is not an octal number")
        return int(part, 8)
    return int(part)


def _parse_ipv4(name: str) -> ipaddress.IPv4Address | None:
    """IPv4 in every spelling inet_aton and browsers accept (decimal, octal, hex, 1 to 4
    parts), or None when the last label is not a number (then it is a name).

    Raises:
        ValueError: it ends in a number but is no valid IPv4 address.
    """
    parts = name.split(".")
    last = parts[-1]
    if not (last.isascii() and last.isdigit()) and not _HEX.match(last):
        return None
    if len(parts) > 4:
        raise ValueError(f"{name[:60]!r} is neither a host name nor an IPv4 address")
    try:
        numbers = [_parse_ipv4_part(p) for p in parts]
    except ValueError as exc:
        raise ValueError(f"{name[:60]!r} is not a valid IPv4 address ({exc})") from None
    *head, tail = numbers
    if any(n > 255 for n in head) or tail >= 256 ** (5 - len(numbers)):
        raise ValueError(f"{name[:60]!r} is not a valid IPv4 address (a part is too large)")
    value = tail
    for index, number in enumerate(head):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _idna_hint(text: str) -> str:
    try:
        ascii_form = text.encode("idna").decode("ascii")
    except UnicodeError:
        return f"{text[:60]!r} is not an ASCII host name"
    return f"{text[:60]!r} is not ASCII; write its IDNA form {ascii_form!r}"


def _parse_port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or not 1 <= int(text) <= 65535:
        raise ValueError(f"has a bad port {text!r} (use 1 to 65535)")
    return int(text)


def _parse_entry(entry: str) -> tuple[str, object, frozenset[int]]:
    """("name" | "suffix" | "address", key, ports) for one allowlist entry.

    Raises:
        ValueError: the entry is malformed (the message continues "entry 'x' ...").
    """
    if "://" in entry or "/" in entry or "@" in entry:
        raise ValueError("must be a host, not a URL (write pypi.org, not https://pypi.org/)")
    ports = DEFAULT_PORTS
    host = entry
    if entry.startswith("["):
        close = entry.find("]")
        if close < 0:
            raise ValueError("has no closing ']'")
        host, rest = entry[: close + 1], entry[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError("has text after ']' that is not ':port'")
            ports = frozenset({_parse_port(rest[1:])})
    elif entry.count(":") > 1:
        raise ValueError("looks like an IPv6 address: write it in brackets, e.g. [::1]:8080")
    elif ":" in entry:
        host, port_text = entry.rsplit(":", 1)
        ports = frozenset({_parse_port(port_text)})
    if host == "*" or (host.startswith("*") and not host.startswith("*.")):
        raise ValueError("allows every host; list the hosts, or use *.domain for a domain")
    wildcard = host.startswith("*.")
    body = host[2:] if wildcard else host
    if "*" in body:
        raise ValueError("may use '*' only as the whole first label, as in *.example.org")
    try:
        ip, name = classify_host(body)
    except ValueError as exc:
        raise ValueError(f"is not a host name or IP address: {exc}") from None
    if ip is not None:
        if wildcard:
            raise ValueError("puts a wildcard on an IP address")
        return "address", ip, ports
    if wildcard:
        return "suffix", "." + name, ports
    return "name", name, ports
