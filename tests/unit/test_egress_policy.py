"""The egress allowlist: parsing EXECUTOR_EGRESS_ALLOW, and deciding host:port requests.

Every address check here is a function call with a fake resolver: no traffic is sent anywhere,
least of all to the link-local, metadata, private or reserved addresses these tests name.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

from executor.egress import Allowlist, EgressLimits, address_problem, classify_host
from settings import ConfigError, ExecutorSettings, load_settings


class FakeResolver:
    """Answers from a table; records every name it was asked (a refused name must not be)."""

    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = table or {}
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return self.table[host]


PUBLIC_V4 = "151.101.0.223"  # a pypi.org address
PUBLIC_V6 = "2a04:4e42::223"


# -- parsing -------------------------------------------------------------------------------


def test_the_default_allows_pypi_on_80_and_443_only():
    allow = Allowlist.parse(load_settings({}).executor.egress_allow)
    resolver = FakeResolver({"pypi.org": [PUBLIC_V4], "files.pythonhosted.org": [PUBLIC_V4]})
    assert allow.decide("pypi.org", 443, resolver).allowed
    assert allow.decide("files.pythonhosted.org", 80, resolver).allowed
    assert not allow.decide("pypi.org", 22, resolver).allowed
    assert not allow.decide("example.org", 443, resolver).allowed
    assert allow.describe() == "pypi.org, files.pythonhosted.org"


def test_empty_text_means_no_egress_at_all():
    allow = Allowlist.parse(" , ")
    assert not allow.enabled
    decision = allow.decide("pypi.org", 443, FakeResolver({"pypi.org": [PUBLIC_V4]}))
    assert not decision.allowed
    assert "EXECUTOR_EGRESS_ALLOW is empty" in decision.reason


def test_entries_with_ports_wildcards_and_literals():
    allow = Allowlist.parse(
        "Example.COM.:8443, *.corp.example, 203.0.114.7, [2a04:4e42::1]:8080, 127.0.0.1:8080"
    )
    resolver = FakeResolver({"example.com": [PUBLIC_V4], "a.b.corp.example": [PUBLIC_V4]})
    assert allow.decide("EXAMPLE.com", 8443, resolver).allowed
    assert not allow.decide("example.com", 443, resolver).allowed  # a port given: only that one
    assert allow.decide("a.b.corp.example", 443, resolver).allowed
    assert not allow.decide("corp.example", 443, resolver).allowed  # *.domain: subdomains only
    assert not allow.decide("evilcorp.example", 443, resolver).allowed
    assert allow.decide("203.0.114.7", 80, resolver).allowed
    assert allow.decide("[2a04:4e42::1]", 8080, resolver).allowed
    assert allow.decide("127.0.0.1", 8080, resolver).allowed
    assert not allow.decide("127.0.0.1", 8081, resolver).allowed


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ("https://pypi.org/", "not a URL"),
        ("pypi.org:0", "bad port"),
        ("pypi.org:65536", "bad port"),
        ("pypi.org:http", "bad port"),
        ("pypi.org:", "bad port"),
        ("*", "every host"),
        ("*pypi.org", "every host"),
        ("a.*.org", "'*' only as the whole first label"),
        ("*.10.0.0.1", "wildcard on an IP"),
        ("::1", "brackets"),
        ("[::1", "closing"),
        ("[::1]x", "not ':port'"),
        ("[fe80::1%eth0]", "scoped"),
        ("bad host", "spaces"),
        ("exa$mple.org", "not a valid label"),
        ("1.2.3.4.5", "neither a host name nor an IPv4"),
        ("999.1.1.1", "too large"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("user@pypi.org", "not a URL"),
    ],
)
def test_bad_entries_name_the_variable_and_the_entry(entry, words):
    with pytest.raises(ConfigError) as caught:
        Allowlist.parse(f"pypi.org,{entry}")
    message = str(caught.value)
    assert message.startswith("EXECUTOR_EGRESS_ALLOW: entry ")
    assert repr(entry) in message
    assert words in message


# -- names are checked before anything is resolved -----------------------------------------


def test_a_name_not_on_the_list_is_never_looked_up():
    resolver = FakeResolver({"secret-data.attacker.example": [PUBLIC_V4]})
    allow = Allowlist.parse("pypi.org")
    decision = allow.decide("secret-data.attacker.example", 443, resolver)
    assert not decision.allowed
    assert decision.reason == "not in EXECUTOR_EGRESS_ALLOW"
    assert decision.status == 403
    assert allow.decide("pypi.org", 8443, resolver).reason.startswith("port 8443 is not allowed")
    assert resolver.calls == []


def test_ip_literals_are_never_looked_up():
    resolver = FakeResolver()
    allow = Allowlist.parse("pypi.org,127.0.0.1:8080")
    for host in ("127.0.0.1", "2130706433", "8.8.8.8", "[::1]", "::1"):
        allow.decide(host, 8080, resolver)
    assert resolver.calls == []


def test_the_connection_goes_to_the_checked_addresses():
    resolver = FakeResolver({"pypi.org": [PUBLIC_V4, PUBLIC_V6, PUBLIC_V4, f"::ffff:{PUBLIC_V4}"]})
    decision = Allowlist.parse("pypi.org").decide("pypi.org", 443, resolver)
    assert decision.allowed
    assert decision.status == 200
    assert decision.addresses == (PUBLIC_V4, PUBLIC_V6)  # deduplicated, mapped form folded
    assert decision.address == PUBLIC_V4
    assert resolver.calls == ["pypi.org"]  # one lookup, no second one


def test_an_allowed_name_that_does_not_resolve_is_a_502():
    decision = Allowlist.parse("pypi.org").decide("pypi.org", 443, FakeResolver())
    assert not decision.allowed
    assert decision.status == 502
    assert decision.reason == "could not be resolved"


# -- every resolved address is checked ------------------------------------------------------

REFUSED_ADDRESSES = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("169.254.169.254", "the cloud metadata address"),
    ("169.254.1.1", "link-local"),
    ("10.1.2.3", "a private address 10.1.2.3"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "shared (CGNAT)"),
    ("100.100.100.200", "shared (CGNAT)"),  # another cloud's metadata address
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("192.0.0.8", "reserved"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.1", "documentation"),
    ("203.0.113.1", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("192.88.99.1", "6to4 relay"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("febf::1", "link-local"),
    ("fc00::1", "unique-local"),
    ("fd00:ec2::254", "unique-local"),  # the AWS IPv6 metadata address
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "metadata"),
    ("::ffff:10.0.0.1", "private"),
    ("::127.0.0.1", "IPv4-compatible"),
    ("64:ff9b::7f00:1", "NAT64"),
    ("64:ff9b::a9fe:a9fe", "metadata"),
    ("64:ff9b:1::a00:1", "local-use NAT64"),
    ("2002:7f00:1::", "6to4"),
    ("2002:a00:1::1", "embeds a private address 10.0.0.1"),
    ("2002:a9fe:a9fe::1", "metadata"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),  # embeds 192.0.2.45 (documentation)
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("100::1", "discard"),
    ("2001:10::1", "reserved"),
    ("2001:2::1", "reserved"),
    ("5f00::1", "reserved"),
    ("4000::1", "reserved"),
]


@pytest.mark.parametrize(("address", "words"), REFUSED_ADDRESSES)
def test_a_name_resolving_to_a_refused_address_is_refused(address, words):
    resolver = FakeResolver({"rebind.example": [address]})
    decision = Allowlist.parse("rebind.example").decide("rebind.example", 443, resolver)
    assert not decision.allowed
    assert decision.reason.startswith("resolves to ")
    assert words in decision.reason
    assert decision.status == 403


@pytest.mark.parametrize(("address", "words"), REFUSED_ADDRESSES)
def test_the_address_ranges_themselves(address, words):
    assert words in (address_problem(ipaddress.ip_address(address)) or "")


@pytest.mark.parametrize(
    "address",
    [
        PUBLIC_V4,
        "8.8.8.8",
        "1.1.1.1",
        PUBLIC_V6,
        "2606:4700::1111",
        "64:ff9b::808:808",
        "2002:808:808::1",
        "::ffff:8.8.8.8",
    ],
)
def test_global_addresses_pass(address):
    assert address_problem(ipaddress.ip_address(address)) is None


def test_one_bad_address_among_good_ones_refuses_the_name():
    resolver = FakeResolver({"rebind.example": [PUBLIC_V4, PUBLIC_V6, "10.1.2.3"]})
    decision = Allowlist.parse("rebind.example").decide("rebind.example", 443, resolver)
    assert not decision.allowed
    assert decision.reason == "resolves to a private address 10.1.2.3"
    assert decision.address == "10.1.2.3"


def test_garbage_from_the_resolver_is_refused():
    resolver = FakeResolver({"odd.example": ["not-an-ip"]})
    assert not Allowlist.parse("odd.example").decide("odd.example", 443, resolver).allowed


# -- literal entries, and the many spellings of an IPv4 address -----------------------------


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "2130706433",
        "0177.0.0.1",
        "0x7f.1",
        "0x7F000001",
        "127.1",
        "127.0.1",
        "017700000001",
        "127.0.0.1.",
        "[::ffff:127.0.0.1]",
        "::ffff:7f00:1",
    ],
)
def test_spellings_of_loopback_match_only_a_literal_entry_of_that_address(host):
    assert classify_host(host)[0] == ipaddress.IPv4Address("127.0.0.1")
    literal = Allowlist.parse("127.0.0.1:8080")
    assert literal.decide(host, 8080, FakeResolver()).allowed
    assert literal.decide(host, 8080, FakeResolver()).addresses == ("127.0.0.1",)
    assert not literal.decide(host, 9090, FakeResolver()).allowed
    by_name = Allowlist.parse("localhost:8080,*.localhost:8080")
    decision = by_name.decide(host, 8080, FakeResolver())
    assert not decision.allowed
    assert decision.reason == "not in EXECUTOR_EGRESS_ALLOW (a loopback address 127.0.0.1)"


@pytest.mark.parametrize(
    ("host", "words"),
    [
        ("1.2.3.4.5", "neither"),
        ("08.0.0.1", "not an octal"),
        ("256.0.0.1", "too large"),
        ("1.16777216", "too large"),
        ("4294967296", "too large"),
        ("foo.0x1", "not a valid IPv4"),
        ("foo_bar$.org", "not a valid label"),
        ("evil.123", "not a valid IPv4"),
        ("fe80::1%eth0", "scoped"),
        ("[::1", "not an IPv6"),
        ("bücher.de", "IDNA form"),
        ("", "empty"),
        ("a b", "spaces"),
        ("a\x00b", "control"),
        ("x" * 254, "253"),
    ],
)
def test_hosts_that_are_neither_names_nor_addresses_are_refused(host, words):
    with pytest.raises(ValueError, match=words):
        classify_host(host)
    resolver = FakeResolver()
    decision = Allowlist.parse("pypi.org").decide(host, 443, resolver)
    assert not decision.allowed
    assert decision.reason.startswith("not a valid host")
    assert resolver.calls == []


def test_a_literal_entry_allows_a_listed_name_that_resolves_to_it():
    """The offline HTTPS recipe: a test name mapped to the host's loopback."""
    resolver = FakeResolver({"index.test": ["127.0.0.1"]})
    allow = Allowlist.parse("index.test:8443,127.0.0.1:8443")
    assert allow.decide("index.test", 8443, resolver).addresses == ("127.0.0.1",)
    assert not Allowlist.parse("index.test:8443").decide("index.test", 8443, resolver).allowed
    assert (
        not Allowlist.parse("index.test:8443,127.0.0.1:9")
        .decide("index.test", 8443, resolver)
        .allowed
    )


def test_a_public_literal_outside_the_list_is_refused_by_the_list():
    decision = Allowlist.parse("pypi.org").decide("8.8.8.8", 443, FakeResolver())
    assert decision.reason == "not in EXECUTOR_EGRESS_ALLOW"


@pytest.mark.parametrize("port", [0, -1, 65536, "443", True, None])
def test_bad_ports_are_refused(port):
    assert not Allowlist.parse("pypi.org").decide("pypi.org", port, FakeResolver()).allowed


def test_the_settings_feed_the_relay_limits():
    spec = load_settings(
        {
            "EXECUTOR_EGRESS_MAX_CONNECTIONS": "8",
            "EXECUTOR_EGRESS_MAX_CONNECTION_BYTES": "512m",
            "EXECUTOR_EGRESS_MAX_SESSION_BYTES": "2g",
            "EXECUTOR_EGRESS_IDLE_TIMEOUT_S": "5",
            "EXECUTOR_EGRESS_CONNECT_TIMEOUT_S": "2.5",
        }
    ).executor
    limits = EgressLimits.from_settings(spec)
    assert (limits.max_connections, limits.connect_timeout_s, limits.idle_timeout_s) == (8, 2.5, 5)
    assert (limits.max_connection_bytes, limits.max_session_bytes) == (512 << 20, 2 << 30)
    assert EgressLimits.from_settings(ExecutorSettings()) == EgressLimits()
