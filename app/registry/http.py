"""Connection settings and the process's httpx clients.

One ``httpx.AsyncClient`` per process serves every registry reached with default TLS and no
proxy; endpoints with their own TLS or proxy settings get a client of their own, built once
per distinct combination and closed with the pool. Environment proxies are ignored
(``trust_env=False``): a config's proxy settings are the only ones that apply.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

import httpx

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=30.0, write=30.0, pool=10.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=32)


@dataclass(frozen=True)
class ProxySettings:
    http_proxy: str | None = field(default=None, repr=False)
    https_proxy: str | None = field(default=None, repr=False)
    no_proxy: str | None = None


@dataclass(frozen=True)
class Endpoint:
    """Where a registry is and how to reach it. Secrets stay out of ``repr``."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    verify_tls: bool = True
    ca_file: str | None = None
    proxy: ProxySettings = field(default_factory=ProxySettings)
    # What a user should change when credentials or TLS fail (the caller knows the context).
    credentials_hint: str = "set external_registry_username and external_registry_password"
    tls_hint: str = "check the certificate or set external_registry_config.verify_tls"

    @property
    def host(self) -> str:
        return httpx.URL(self.url).netloc.decode()


def _verify(endpoint: Endpoint) -> ssl.SSLContext | bool:
    if not endpoint.verify_tls:
        return False
    context = ssl.create_default_context()
    if endpoint.ca_file:
        context.load_verify_locations(cafile=endpoint.ca_file)
    return context


def _mounts(endpoint: Endpoint) -> dict[str, httpx.AsyncBaseTransport | None]:
    verify = _verify(endpoint)
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
    proxy = endpoint.proxy
    if proxy.http_proxy:
        mounts["http://"] = httpx.AsyncHTTPTransport(proxy=proxy.http_proxy, verify=verify)
    if proxy.https_proxy:
        mounts["https://"] = httpx.AsyncHTTPTransport(proxy=proxy.https_proxy, verify=verify)
    for entry in (proxy.no_proxy or "").replace(" ", ",").split(","):
        entry = entry.strip()
        if not entry or not mounts:
            continue
        pattern = f"all://*{entry}" if entry.startswith(".") else f"all://{entry}"
        mounts[pattern] = httpx.AsyncHTTPTransport(verify=verify)
    return mounts


class HttpClients:
    """The process's httpx clients, keyed by the transport settings they embody."""

    def __init__(
        self,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
    ) -> None:
        self._timeout = timeout
        self._limits = limits
        self._clients: dict[tuple[object, ...], httpx.AsyncClient] = {}

    def for_endpoint(self, endpoint: Endpoint) -> httpx.AsyncClient:
        key = (endpoint.verify_tls, endpoint.ca_file, endpoint.proxy)
        client = self._clients.get(key)
        if client is None:
            client = httpx.AsyncClient(
                verify=_verify(endpoint),
                mounts=_mounts(endpoint),
                timeout=self._timeout,
                limits=self._limits,
                follow_redirects=False,
                trust_env=False,
            )
            self._clients[key] = client
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()
