"""The registry URL rules and the SSRF guard (SPEC 1.1, 5.2).

Real resolution is used where this machine can give it (``localhost`` from /etc/hosts, an
unresolvable ``.invalid`` name, IP literals). There is no DNS server here, so answers that
only a real zone could give (a public name pointing at a private address, several addresses
for one name) come from a fake ``socket.getaddrinfo``: the boundary the event loop calls.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from app.errors import InvalidRequest
from app.registry.ssrf import HostNotResolvable, SsrfGuard, UrlNotAllowed, parse_registry_url

GENERIC = "The provided registry URL is not allowed"

FakeDns = Callable[[dict[str, list[str]]], None]


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    """Answer the given names from a table; anything else goes to the real resolver."""
    real_getaddrinfo = socket.getaddrinfo

    def install(table: dict[str, list[str]]) -> None:
        def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
            addresses = table.get(host.removesuffix("."))
            if addresses is None:
                return real_getaddrinfo(host, port, *args, **kwargs)
            return [_addrinfo(address, port) for address in addresses]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    return install


def _addrinfo(address: str, port: int | None) -> tuple[Any, ...]:
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port or 0, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0))


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything tries to resolve a name."""

    def getaddrinfo(*args: Any, **kwargs: Any) -> list[Any]:
        raise AssertionError(f"unexpected DNS lookup: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


# --- parse_registry_url -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://registry.example.com", "https://registry.example.com"),
        ("HTTPS://Registry.Example.COM:5000/", "https://registry.example.com:5000"),
        ("http://harbor.example.com:08080", "http://harbor.example.com:8080"),
        ("http://[::1]:5000", "http://[::1]:5000"),
        ("http://[2001:DB8:0:0::1]/", "http://[2001:db8::1]"),
        ("http://registry.example.com.", "http://registry.example.com."),
        ("http://8.8.8.8:443", "http://8.8.8.8:443"),
    ],
)
def test_parse_registry_url_normalises(url: str, expected: str) -> None:
    assert parse_registry_url(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://2130706433", "http://127.0.0.1"),
        ("http://0x7f000001:5000", "http://127.0.0.1:5000"),
        ("http://0177.0.0.1", "http://127.0.0.1"),
        ("http://127.1", "http://127.0.0.1"),
        ("http://0x7f.1", "http://127.0.0.1"),
    ],
)
def test_parse_registry_url_canonicalises_legacy_ipv4_forms(url: str, expected: str) -> None:
    assert parse_registry_url(url) == expected


def test_parse_registry_url_folds_fullwidth_host_to_ascii() -> None:
    fullwidth = "".join(chr(ord(char) + 0xFEE0) for char in "localhost")

    assert parse_registry_url(f"http://{fullwidth}") == "http://localhost"


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("ftp://registry.example.com", "scheme must be http or https"),
        ("registry.example.com", "scheme must be http or https"),
        ("registry.example.com:5000", "scheme must be http or https"),
        ("file:///etc/passwd", "scheme must be http or https"),
        ("https://user:secret@registry.example.com", "must not contain credentials"),
        ("https://user@registry.example.com", "must not contain credentials"),
        ("https://registry.example.com?x=1", "must not have a query or fragment"),
        ("https://registry.example.com/?", "must not have a query or fragment"),
        ("https://registry.example.com#frag", "must not have a query or fragment"),
        ("https://registry.example.com/v2", "must not have a path (use external_namespace)"),
        ("https://registry.example.com//", "must not have a path (use external_namespace)"),
        ("https://registry.example.com:0", "invalid port"),
        ("https://registry.example.com:65536", "invalid port"),
        ("https://registry.example.com:http", "invalid port"),
        ("https://registry.example.com:", "invalid port"),
        ("https://registry.example.com:+80", "invalid port"),
        ("https://", "missing host"),
        ("https://:5000", "missing host"),
        ("https://[]:5000", "invalid host"),
        ("http://[::1", "invalid host"),
        ("http://[127.0.0.1]", "invalid host"),
        ("http://[fe80::1%25eth0]", "invalid host"),
        ("http://-registry.example.com", "invalid host"),
        ("http://registry..example.com", "invalid host"),
        ("http://::1", "IPv6 addresses must be in brackets"),
        (
            "http://registry.example.com /",
            "must not contain whitespace, control characters or backslashes",
        ),
        (
            "http://evil.example.com\\@registry.example.com",
            "must not contain whitespace, control characters or backslashes",
        ),
        (
            "http://registry.example.com\n",
            "must not contain whitespace, control characters or backslashes",
        ),
    ],
)
def test_parse_registry_url_names_the_field_and_rule(url: str, rule: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_registry_url(url)

    assert caught.value.detail == f"external_registry_url: {rule}"
    assert caught.value.status == 400


# --- error types ----------------------------------------------------------------------------


def test_url_not_allowed_detail_is_generic_and_keeps_reason_out_of_it() -> None:
    error = UrlNotAllowed(reason="address 127.0.0.1 is blocked")

    assert error.detail == GENERIC
    assert str(error) == GENERIC
    assert error.reason == "address 127.0.0.1 is blocked"
    assert isinstance(error, InvalidRequest)
    assert error.status == 400


def test_host_not_resolvable_detail_names_the_host() -> None:
    error = HostNotResolvable("registry.example.invalid")

    assert error.detail == (
        "external_registry_url: host 'registry.example.invalid' could not be resolved "
        "(DNS lookup failed); check the name"
    )
    assert isinstance(error, InvalidRequest)


# --- check_url: refusals ----------------------------------------------------------------------

BLOCKED_LITERALS = [
    "http://127.0.0.1",
    "http://127.8.9.10:5000",
    "http://10.1.2.3",
    "http://172.16.0.1",
    "http://192.168.1.1",
    "http://169.254.169.254",
    "http://169.254.1.1",
    "http://100.64.0.1",
    "http://0.0.0.0",
    "http://224.0.0.1",
    "http://240.0.0.1",
    "http://255.255.255.255",
    "http://192.0.2.1",
    "http://[::1]",
    "http://[::]",
    "http://[fe80::1]",
    "http://[fc00::1]",
    "http://[fec0::1]",
    "http://[fd00:ec2::254]",
    "http://[ff02::1]",
    "http://[ff0e::1]",
    "http://[::ffff:127.0.0.1]",
    "http://[::ffff:8.8.8.8]",
    "http://[::127.0.0.1]",
    "http://[64:ff9b::8.8.8.8]",
    "http://[64:ff9b::a00:1]",
    "http://[64:ff9b:1::1]",
    "http://[2002:7f00:1::]",
    "http://[2002:a00:1::1]",
    "http://[2001:0:808:808:0:0:80ff:fffe]",
]


@pytest.mark.parametrize("url", BLOCKED_LITERALS)
@pytest.mark.usefixtures("no_dns")
async def test_check_url_refuses_internal_address_literals(url: str) -> None:
    with pytest.raises(UrlNotAllowed) as caught:
        await SsrfGuard([]).check_url(url)

    assert caught.value.detail == GENERIC


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433",
        "http://0x7f000001",
        "http://0177.0.0.1",
        "http://017700000001",
        "http://127.1",
        "http://0x7f.1",
        "http://0xa9fea9fe",  # 169.254.169.254
        "http://0x0a.1.2.3",
        "http://0",
    ],
)
@pytest.mark.usefixtures("no_dns")
async def test_check_url_refuses_legacy_numeric_ipv4_forms(url: str) -> None:
    with pytest.raises(UrlNotAllowed) as caught:
        await SsrfGuard([]).check_url(url)

    assert caught.value.detail == GENERIC


BLOCKED_NAMES = [
    "localhost",
    "LOCALHOST",
    "localhost.",
    "registry.localhost",
    "printer.local",
    "registry.local.",
    "db.internal",
    "ip-10-0-0-1.ec2.internal",
    "metadata",
    "metadata.google.internal",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "registry.mirrors.svc",
    "registry.mirrors.svc.cluster.local",
    "anything.cluster.local",
]


@pytest.mark.parametrize("host", BLOCKED_NAMES)
@pytest.mark.usefixtures("no_dns")
async def test_check_url_refuses_internal_names_before_any_lookup(host: str) -> None:
    with pytest.raises(UrlNotAllowed) as caught:
        await SsrfGuard([]).check_url(f"https://{host}:5000")

    assert caught.value.detail == GENERIC


async def test_check_url_refuses_fullwidth_localhost() -> None:
    fullwidth = "".join(chr(ord(char) + 0xFEE0) for char in "localhost")

    with pytest.raises(UrlNotAllowed):
        await SsrfGuard([]).check_url(f"http://{fullwidth}")


async def test_check_url_refuses_public_name_resolving_to_loopback(fake_dns: FakeDns) -> None:
    fake_dns({"rebind.example.com": ["127.0.0.1"]})

    with pytest.raises(UrlNotAllowed) as caught:
        await SsrfGuard([]).check_url("https://rebind.example.com")

    assert caught.value.detail == GENERIC


async def test_check_url_refuses_when_any_resolved_address_is_internal(fake_dns: FakeDns) -> None:
    fake_dns({"mixed.example.com": ["8.8.8.8", "2606:4700::1111", "10.0.0.7"]})

    with pytest.raises(UrlNotAllowed):
        await SsrfGuard([]).check_url("https://mixed.example.com")


async def test_check_url_refuses_name_resolving_to_ipv6_mapped_loopback(
    fake_dns: FakeDns,
) -> None:
    fake_dns({"mapped.example.com": ["::ffff:127.0.0.1"]})

    with pytest.raises(UrlNotAllowed):
        await SsrfGuard([]).check_url("https://mapped.example.com")


async def test_check_url_refusal_does_not_reveal_the_reason() -> None:
    with pytest.raises(UrlNotAllowed) as caught:
        await SsrfGuard([]).check_url("http://169.254.169.254")

    assert "169.254" not in caught.value.detail
    assert caught.value.detail == GENERIC


# --- check_url: success and resolution ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://8.8.8.8", ["8.8.8.8"]),
        ("https://1.1.1.1:8443/", ["1.1.1.1"]),
        ("https://[2606:4700:4700::1111]", ["2606:4700:4700::1111"]),
    ],
)
@pytest.mark.usefixtures("no_dns")
async def test_check_url_accepts_public_literals_without_dns(url: str, expected: list[str]) -> None:
    assert await SsrfGuard([]).check_url(url) == expected


async def test_check_url_returns_every_resolved_address_once(fake_dns: FakeDns) -> None:
    fake_dns({"registry.example.com": ["8.8.8.8", "8.8.4.4", "8.8.8.8", "2001:4860:4860::8888"]})

    addresses = await SsrfGuard([]).check_url("https://registry.example.com:5000")

    assert addresses == ["8.8.8.8", "8.8.4.4", "2001:4860:4860::8888"]


async def test_check_url_reports_unresolvable_host_distinctly() -> None:
    with pytest.raises(HostNotResolvable) as caught:
        await SsrfGuard([]).check_url("https://no-such-registry.invalid:5000")

    assert caught.value.detail == (
        "external_registry_url: host 'no-such-registry.invalid' could not be resolved "
        "(DNS lookup failed); check the name"
    )


async def test_check_url_treats_a_slow_resolver_as_unresolvable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def slow_getaddrinfo(*args: Any, **kwargs: Any) -> list[Any]:
        time.sleep(0.3)
        return []

    monkeypatch.setattr(socket, "getaddrinfo", slow_getaddrinfo)

    with pytest.raises(HostNotResolvable):
        await SsrfGuard([], resolve_timeout=0.05).check_url("https://slow.example.com")


async def test_check_url_rejects_malformed_url_before_the_ssrf_rules() -> None:
    with pytest.raises(InvalidRequest) as caught:
        await SsrfGuard([]).check_url("https://user:pw@127.0.0.1")

    assert not isinstance(caught.value, UrlNotAllowed)
    assert caught.value.detail == "external_registry_url: must not contain credentials"


# --- the allow list -----------------------------------------------------------------------------


async def test_allowed_address_lets_localhost_through_by_real_resolution() -> None:
    guard = SsrfGuard(["127.0.0.1"])

    assert await guard.check_url("http://localhost:5000") == ["127.0.0.1"]


async def test_allowed_address_does_not_open_other_loopback_addresses() -> None:
    with pytest.raises(UrlNotAllowed):
        await SsrfGuard(["127.0.0.1"]).check_url("http://127.0.0.2:5000")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://2130706433:5000", ["127.0.0.1"]),
        ("http://127.1:5000", ["127.0.0.1"]),
        ("http://[::ffff:127.0.0.1]:5000", ["::ffff:7f00:1"]),
    ],
)
async def test_allowed_address_covers_its_other_spellings(url: str, expected: list[str]) -> None:
    assert await SsrfGuard(["127.0.0.1"]).check_url(url) == expected


async def test_allowed_ipv6_loopback() -> None:
    guard = SsrfGuard(["::1"])

    assert await guard.check_url("http://[::1]:5000") == ["::1"]
    with pytest.raises(UrlNotAllowed):
        await guard.check_url("http://127.0.0.1:5000")


async def test_allowed_by_hostname_allows_all_its_addresses(fake_dns: FakeDns) -> None:
    fake_dns({"registry.local": ["10.0.0.5", "127.0.0.1", "fd00::5"]})
    guard = SsrfGuard(["Registry.Local"])

    assert await guard.check_url("http://REGISTRY.local.:5000") == [
        "10.0.0.5",
        "127.0.0.1",
        "fd00::5",
    ]


async def test_allowed_hostname_does_not_cover_subdomains_or_siblings(fake_dns: FakeDns) -> None:
    fake_dns({"sub.registry.local": ["10.0.0.5"], "other.example.com": ["10.0.0.5"]})
    guard = SsrfGuard(["registry.local"])

    with pytest.raises(UrlNotAllowed):
        await guard.check_url("http://sub.registry.local")
    with pytest.raises(UrlNotAllowed):
        await guard.check_url("http://other.example.com")


async def test_allowed_cidr_lets_a_name_resolving_inside_it_through(fake_dns: FakeDns) -> None:
    fake_dns({"harbor.corp.example": ["10.20.30.40"]})

    assert await SsrfGuard(["10.0.0.0/8"]).check_url("https://harbor.corp.example") == [
        "10.20.30.40"
    ]


async def test_allowed_cidr_lets_a_blocked_name_through_when_it_resolves_inside(
    fake_dns: FakeDns,
) -> None:
    fake_dns({"harbor.internal": ["10.20.30.40"]})

    assert await SsrfGuard(["10.0.0.0/8"]).check_url("https://harbor.internal") == ["10.20.30.40"]


async def test_allowed_cidr_needs_every_other_address_to_pass(fake_dns: FakeDns) -> None:
    fake_dns({"harbor.corp.example": ["10.20.30.40", "192.168.0.9"]})

    with pytest.raises(UrlNotAllowed):
        await SsrfGuard(["10.0.0.0/8"]).check_url("https://harbor.corp.example")


async def test_allowed_cidr_accepts_public_companions(fake_dns: FakeDns) -> None:
    fake_dns({"harbor.corp.example": ["10.20.30.40", "8.8.8.8"]})

    addresses = await SsrfGuard(["10.0.0.0/8"]).check_url("https://harbor.corp.example")

    assert addresses == ["10.20.30.40", "8.8.8.8"]


async def test_allowed_cidr_does_not_open_a_blocked_name_resolving_elsewhere(
    fake_dns: FakeDns,
) -> None:
    fake_dns({"metadata.google.internal": ["169.254.169.254"], "public.internal": ["8.8.8.8"]})
    guard = SsrfGuard(["10.0.0.0/8"])

    with pytest.raises(UrlNotAllowed):
        await guard.check_url("http://metadata.google.internal")
    with pytest.raises(UrlNotAllowed):
        await guard.check_url("http://public.internal")


async def test_blocked_unresolvable_name_is_refused_generically_even_with_an_allow_list() -> None:
    with pytest.raises(UrlNotAllowed):
        await SsrfGuard(["10.0.0.0/8"]).check_url("http://localhost.")


@pytest.mark.parametrize("entry", ["registry.local:5000", "http://registry.local", "bad host"])
def test_invalid_allow_list_entry_is_a_configuration_error(entry: str) -> None:
    with pytest.raises(ValueError, match="SSRF_ALLOWED_HOSTS"):
        SsrfGuard([entry])


def test_blank_allow_list_entries_are_ignored() -> None:
    guard = SsrfGuard(["", "  "])

    with pytest.raises(UrlNotAllowed):
        guard.check_host_static("127.0.0.1")


# --- check_host_static ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", [*BLOCKED_NAMES, "127.0.0.1", "[::1]", "::1", "2130706433", "0x7f.1"]
)
@pytest.mark.usefixtures("no_dns")
def test_check_host_static_refuses_internal_hosts(host: str) -> None:
    with pytest.raises(UrlNotAllowed) as caught:
        SsrfGuard([]).check_host_static(host)

    assert caught.value.detail == GENERIC


@pytest.mark.parametrize(
    "host", ["registry.example.com", "8.8.8.8", "[2606:4700::1111]", "quay.io."]
)
@pytest.mark.usefixtures("no_dns")
def test_check_host_static_accepts_public_hosts(host: str) -> None:
    SsrfGuard([]).check_host_static(host)


@pytest.mark.parametrize("host", ["bad host", "", "a..b", "[zz]"])
def test_check_host_static_refuses_invalid_hosts(host: str) -> None:
    with pytest.raises(UrlNotAllowed):
        SsrfGuard([]).check_host_static(host)


@pytest.mark.usefixtures("no_dns")
def test_check_host_static_honours_the_allow_list() -> None:
    guard = SsrfGuard(["registry.local", "10.0.0.0/8"])

    guard.check_host_static("Registry.Local.")
    guard.check_host_static("10.9.8.7")
    with pytest.raises(UrlNotAllowed):
        guard.check_host_static("11.0.0.1.local")
