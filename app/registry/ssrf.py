"""Validation of source registry URLs and the SSRF guard (SPEC 1.1, 5.2).

A mirror config makes the service fetch from a URL a user typed, so that URL must not reach
the service's own network: loopback, private ranges, cloud metadata, cluster services. The
guard checks the host name without DNS, then every address the name resolves to, because a
public-looking name can point anywhere (and can change between checks: callers re-check
before every discovery and sync).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.errors import InvalidRequest

__all__ = ["HostNotResolvable", "SsrfGuard", "UrlNotAllowed", "parse_registry_url"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_FIELD = "external_registry_url"
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
# Characters of the legacy IPv4 forms (2130706433, 0x7f000001, 0177.0.0.1, 127.1).
_NUMERIC_HOST = re.compile(r"[0-9a-fx.]+")

_BLOCKED_NAMES = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "ip6-localhost",
        "ip6-loopback",
        "metadata",
        "metadata.google.internal",
        "instance-data",
        "kubernetes",
        "kubernetes.default",
    }
)
_BLOCKED_SUFFIXES = (".localhost", ".local", ".internal", ".svc", ".cluster.local")

# Listed explicitly rather than left to ipaddress's predicates, whose ranges change between
# Python versions (3.11 calls 64:ff9b::/96 global, for instance, and only its "reserved" saves it).
_BLOCKED_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "100.64.0.0/10",  # CGNAT: the provider's side of the network
        "169.254.169.254/32",  # cloud metadata
        "64:ff9b::/96",  # NAT64 reaches any IPv4, private ones included
        "64:ff9b:1::/48",  # local-use NAT64
        "::ffff:0:0/96",  # IPv4-mapped
        "fd00:ec2::254/128",  # AWS metadata over IPv6
    )
)


class UrlNotAllowed(InvalidRequest):
    """The URL's host or one of its addresses is refused by the SSRF rules.

    The detail is deliberately generic so that a caller cannot map the internal network;
    ``reason`` is for the server's own logs only.
    """

    GENERIC_DETAIL = "The provided registry URL is not allowed"

    def __init__(self, *, reason: str = "") -> None:
        super().__init__(self.GENERIC_DETAIL)
        self.reason = reason


class HostNotResolvable(InvalidRequest):
    """The host name has no address (a typo, most often), which is worth telling the user."""

    def __init__(self, host: str) -> None:
        super().__init__(
            f"{_FIELD}: host '{host}' could not be resolved (DNS lookup failed); check the name"
        )
        self.host = host


@dataclass(frozen=True, slots=True)
class _RegistryUrl:
    scheme: str
    host: str  # canonical, IPv6 without brackets
    port: int | None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port is None else f":{self.port}"
        return f"{self.scheme}://{host}{port}"


def _invalid(rule: str) -> InvalidRequest:
    return InvalidRequest(f"{_FIELD}: {rule}")


def parse_registry_url(url: str) -> str:
    """Validate ``http(s)://host[:port]`` and return it normalised; no network is used."""
    return _parse(url).url


def _parse(url: str) -> _RegistryUrl:
    # urlsplit silently drops some whitespace and clients treat "\" as "/": refuse both.
    if any(char.isspace() or not char.isprintable() or char == "\\" for char in url):
        raise _invalid("must not contain whitespace, control characters or backslashes")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise _invalid("invalid host") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise _invalid("scheme must be http or https")
    if "@" in parts.netloc:
        raise _invalid("must not contain credentials")
    if "?" in url or "#" in url:
        raise _invalid("must not have a query or fragment")
    if parts.path not in ("", "/"):
        raise _invalid("must not have a path (use external_namespace)")
    host, port = _split_netloc(parts.netloc)
    return _RegistryUrl(parts.scheme.lower(), host, port)


def _split_netloc(netloc: str) -> tuple[str, int | None]:
    if netloc.startswith("["):
        host, bracket, rest = netloc[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise _invalid("invalid host")
    elif netloc.count(":") > 1:
        raise _invalid("IPv6 addresses must be in brackets")
    else:
        host, colon, port = netloc.partition(":")
        rest = colon + port
    if not host:
        raise _invalid("missing host")
    return _normalise_host(host, is_ipv6=netloc.startswith("[")), _parse_port(rest)


def _parse_port(rest: str) -> int | None:
    """``rest`` is what follows the host: empty, or ``:`` and the port."""
    if not rest:
        return None
    digits = rest[1:]
    if not (digits.isascii() and digits.isdigit()) or not 1 <= int(digits) <= 65535:
        raise _invalid("invalid port")
    return int(digits)


def _normalise_host(host: str, *, is_ipv6: bool) -> str:
    """Canonical bare host: compressed IPv6, dotted IPv4, or a lower-case ASCII name."""
    if is_ipv6:
        return _normalise_ipv6(host)
    name = _to_ascii(host).lower()
    labels = name.removesuffix(".").split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise _invalid("invalid host")
    return _numeric_ipv4(name) or name


def _normalise_ipv6(host: str) -> str:
    # A zone id ("%eth0") only makes sense for link-local addresses, which are blocked anyway.
    if "%" in host:
        raise _invalid("invalid host")
    try:
        return ipaddress.IPv6Address(host).compressed
    except ValueError:
        raise _invalid("invalid host") from None


def _to_ascii(host: str) -> str:
    if host.isascii():
        return host
    try:
        # IDNA also folds look-alikes (fullwidth "localhost") before the name rules see them.
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise _invalid("invalid host") from None


def _numeric_ipv4(name: str) -> str | None:
    """The dotted quad for the legacy forms getaddrinfo accepts (``127.1``, ``0x7f000001``)."""
    bare = name.removesuffix(".")
    if not _NUMERIC_HOST.fullmatch(bare):
        return None
    try:
        return str(ipaddress.IPv4Address(socket.inet_aton(bare)))
    except OSError:
        return None


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _name_is_blocked(name: str) -> bool:
    return name in _BLOCKED_NAMES or name.endswith(_BLOCKED_SUFFIXES)


def _address_is_blocked(address: IPAddress) -> bool:
    if any(address in network for network in _BLOCKED_NETWORKS):
        return True
    if (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
    ):
        return True
    return any(_address_is_blocked(embedded) for embedded in _embedded_ipv4(address))


def _embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses that 6to4 and Teredo tunnel to (the clients of a public IPv6 prefix)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    embedded = [address.sixtofour] if address.sixtofour else []
    if address.teredo:
        embedded.extend(address.teredo)
    return embedded


def _parse_allow_list(entries: Iterable[str]) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        try:
            host = _normalise_host(entry, is_ipv6=False)
        except InvalidRequest:
            raise ValueError(f"SSRF_ALLOWED_HOSTS: invalid entry {raw!r}") from None
        literal = _ip_literal(host)
        if literal is not None:
            networks.append(ipaddress.ip_network(literal))
        else:
            names.add(host.removesuffix("."))
    return frozenset(names), tuple(networks)


def _as_text(addresses: Iterable[IPAddress]) -> list[str]:
    return [str(address) for address in addresses]


class SsrfGuard:
    """Refuses registry hosts that lead into our own network unless an operator allowed them.

    ``allowed_hosts`` (``ORGMIRROR_SSRF_ALLOWED_HOSTS``) holds host names, IP addresses and
    CIDRs. A name entry allows that exact host and whatever it resolves to. An address entry
    allows those addresses, and with them a blocked name that resolves into them (``localhost``
    with ``127.0.0.1`` listed), but every other address of the host must still pass.
    """

    def __init__(self, allowed_hosts: Iterable[str] = (), *, resolve_timeout: float = 10.0) -> None:
        self._allowed_names, self._allowed_networks = _parse_allow_list(allowed_hosts)
        self._resolve_timeout = resolve_timeout

    def check_host_static(self, host: str) -> None:
        """Apply the name rules (and the address rules to an IP literal) without DNS.

        Stricter than :meth:`check_url` for a blocked name: letting one through because its
        addresses are allowed needs DNS, so only :meth:`check_url` does that.
        """
        bracketed = host.startswith("[") and host.endswith("]")
        bare = host[1:-1] if bracketed else host
        try:
            name = _normalise_host(bare, is_ipv6=bracketed or ":" in bare).removesuffix(".")
        except InvalidRequest:
            raise UrlNotAllowed(reason=f"invalid host {host!r}") from None
        if name in self._allowed_names:
            return
        literal = _ip_literal(name)
        if literal is not None:
            self._check_addresses([literal])
        elif _name_is_blocked(name):
            raise UrlNotAllowed(reason=f"host name {name!r} is blocked")

    async def check_url(self, url: str) -> list[str]:
        """Parse ``url``, then refuse it if its name or ANY resolved address is blocked.

        Returns the resolved addresses. Raises :class:`InvalidRequest` for a malformed URL,
        :class:`UrlNotAllowed` for a refused one, :class:`HostNotResolvable` without DNS answer.
        """
        return await self._check_target(_parse(url))

    async def check_proxy(self, url: str) -> list[str]:
        """The same rules for a proxy URL (which may carry credentials and a socks scheme):
        a proxy on a private address would let every request into our own network."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise UrlNotAllowed(reason="malformed proxy URL") from None
        if not parts.hostname:
            raise UrlNotAllowed(reason="proxy URL without a host")
        host = _normalise_host(parts.hostname, is_ipv6=":" in parts.hostname)
        return await self._check_target(_RegistryUrl(parts.scheme.lower(), host, port))

    async def _check_target(self, target: _RegistryUrl) -> list[str]:
        name = target.host.removesuffix(".")
        if name in self._allowed_names:
            return _as_text(await self._resolve(target))
        name_blocked = _name_is_blocked(name)
        if name_blocked and not self._allowed_networks:
            raise UrlNotAllowed(reason=f"host name {name!r} is blocked")
        try:
            addresses = await self._resolve(target)
        except HostNotResolvable:
            if name_blocked:  # stay generic: a blocked name is refused, resolvable or not
                raise UrlNotAllowed(reason=f"host name {name!r} is blocked") from None
            raise
        self._check_addresses(addresses)
        if name_blocked and not any(self._address_is_allowed(a) for a in addresses):
            raise UrlNotAllowed(reason=f"host name {name!r} is blocked")
        return _as_text(addresses)

    async def _resolve(self, target: _RegistryUrl) -> list[IPAddress]:
        literal = _ip_literal(target.host)
        if literal is not None:
            return [literal]  # nothing to look up, and no network touched
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._resolve_timeout):
                infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError, UnicodeError):
            raise HostNotResolvable(target.host) from None
        found = [info[4][0] for info in infos if isinstance(info[4][0], str)]
        addresses = list(dict.fromkeys(ipaddress.ip_address(address) for address in found))
        if not addresses:
            raise HostNotResolvable(target.host)
        return addresses

    def _check_addresses(self, addresses: Iterable[IPAddress]) -> None:
        for address in addresses:
            if _address_is_blocked(address) and not self._address_is_allowed(address):
                raise UrlNotAllowed(reason=f"address {address} is blocked")

    def _address_is_allowed(self, address: IPAddress) -> bool:
        # An IPv4-mapped address reaches the same host as its IPv4 form, so an IPv4 entry
        # covers it; the mapped range itself stays blocked for everything not listed.
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            candidates.append(address.ipv4_mapped)
        return any(c in network for c in candidates for network in self._allowed_networks)
