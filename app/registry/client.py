"""The registry client: the distribution v2 API and registry REST APIs, with auth and retries.

Auth follows the distribution token flow: a 401 carries ``WWW-Authenticate: Bearer realm=…,
service=…,scope=…``; the token is fetched from the realm (with Basic credentials when the
endpoint has them) and cached per (realm, service, scope) until it expires. A ``Basic``
challenge is answered with the credentials. Redirects are followed only within the same host.
Transient failures (connection errors, timeouts, 429, 5xx) are retried with exponential backoff
and jitter, honouring ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from app.registry.auth import TokenCache, basic_header, parse_challenge, scope_for_path
from app.registry.errors import (
    RegistryAuthFailed,
    RegistryDnsError,
    RegistryError,
    RegistryForbidden,
    RegistryNotFound,
    RegistryProtocolError,
    RegistryTimeout,
    RegistryTlsError,
    RegistryUnavailable,
)
from app.registry.http import Endpoint, HttpClients
from app.registry.ssrf import SsrfGuard

MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
MANIFEST_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)
CATALOG_PAGE_SIZE = 1000
MAX_REDIRECTS = 5

ApiAuth = Literal["basic", "bearer"] | None


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    params: Mapping[str, str | int] | None
    headers: Mapping[str, str] | None
    api_auth: ApiAuth
    content: bytes | None


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 10.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _what(endpoint: Endpoint) -> str:
    return f"registry {endpoint.url}"


def translate_transport_error(endpoint: Endpoint, exc: httpx.TransportError) -> RegistryError:
    """httpx's exceptions into ours, with a message that says what to check."""
    where = _what(endpoint)
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return RegistryTlsError(
                f"TLS failure talking to {where}: {cause.__class__.__name__}: "
                f"{getattr(cause, 'reason', None) or cause}; {endpoint.tls_hint}"
            )
        if isinstance(cause, OSError) and "Name or service not known" in str(cause):
            break
        cause = cause.__cause__ or cause.__context__
    text = str(exc) or exc.__class__.__name__
    if "Name or service not known" in text or "nodename nor servname" in text:
        return RegistryDnsError(f"DNS lookup failed for {where}; check the host name")
    if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text:
        return RegistryTlsError(f"TLS failure talking to {where}: {text}")
    if isinstance(exc, httpx.TimeoutException):
        return RegistryTimeout(f"Timed out waiting for {where} ({exc.__class__.__name__})")
    return RegistryUnavailable(f"Cannot connect to {where}: {text}")


class RegistryClient:
    """Talks to registries on behalf of the worker and the verify endpoint."""

    def __init__(
        self,
        clients: HttpClients,
        *,
        ssrf: SsrfGuard | None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._clients = clients
        self._ssrf = ssrf
        self._retry = retry or RetryPolicy()
        self._tokens = TokenCache()
        self._basic_registries: set[str] = set()

    async def check_endpoint(self, endpoint: Endpoint) -> None:
        """Apply the SSRF rules (with DNS) to a source and its proxies before connecting."""
        if self._ssrf is None:
            return
        await self._ssrf.check_url(endpoint.url)
        for proxy in (endpoint.proxy.http_proxy, endpoint.proxy.https_proxy):
            if proxy:
                await self._ssrf.check_proxy(proxy)

    async def request(
        self,
        endpoint: Endpoint,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        api_auth: ApiAuth = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """Send with retries; 2xx comes back, everything else raises a RegistryError."""
        attempt = 0
        call = _Call(method, path, params, headers, api_auth, content)
        while True:
            attempt += 1
            try:
                return await self._attempt(endpoint, call)
            except RegistryUnavailable as exc:
                if attempt >= self._retry.attempts:
                    raise
                await asyncio.sleep(self._retry.delay(attempt, exc.retry_after))

    async def get_json(
        self,
        endpoint: Endpoint,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        api_auth: ApiAuth = None,
    ) -> tuple[Any, httpx.Response]:
        response = await self.request(endpoint, "GET", path, params=params, api_auth=api_auth)
        try:
            return response.json(), response
        except ValueError as exc:
            raise RegistryProtocolError(
                f"{_what(endpoint)} answered {path} with something that is not JSON"
            ) from exc

    async def post_json(
        self, endpoint: Endpoint, path: str, body: Mapping[str, object], *, api_auth: ApiAuth
    ) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        content = json.dumps(body).encode()
        return await self.request(
            endpoint, "POST", path, headers=headers, api_auth=api_auth, content=content
        )

    async def catalog(self, endpoint: Endpoint) -> list[str]:
        """Every repository name of ``/v2/_catalog``, following ``Link`` pages."""
        names: list[str] = []
        path: str | None = "/v2/_catalog"
        params: dict[str, str | int] | None = {"n": CATALOG_PAGE_SIZE}
        while path is not None:
            body, response = await self.get_json(endpoint, path, params=params)
            names.extend(_string_list(body, "repositories", endpoint))
            path, params = _next_link(endpoint, response), None
        return names

    async def list_tags(self, endpoint: Endpoint, repository: str) -> list[str]:
        """All tags of a repository, sorted; follows ``Link`` when the registry pages."""
        tags: list[str] = []
        path: str | None = f"/v2/{repository}/tags/list"
        while path is not None:
            body, response = await self.get_json(endpoint, path)
            tags.extend(_string_list(body, "tags", endpoint))
            path = _next_link(endpoint, response)
        return sorted(set(tags))

    async def manifest_digest(self, endpoint: Endpoint, repository: str, reference: str) -> str:
        """The manifest digest by HEAD; GET + sha256 when no Docker-Content-Digest is sent."""
        path = f"/v2/{repository}/manifests/{reference}"
        headers = {"Accept": MANIFEST_ACCEPT}
        response = await self.request(endpoint, "HEAD", path, headers=headers)
        digest: str | None = response.headers.get("docker-content-digest")
        if digest:
            return digest
        response = await self.request(endpoint, "GET", path, headers=headers)
        return "sha256:" + hashlib.sha256(response.content).hexdigest()

    async def _attempt(self, endpoint: Endpoint, call: _Call) -> httpx.Response:
        scope = scope_for_path(call.path) if call.api_auth is None else None
        response = await self._send(endpoint, call, scope)
        if response.status_code == 401 and call.api_auth is None:
            challenge = response.headers.get("www-authenticate", "")
            scope = await self._answer_challenge(endpoint, challenge, scope)
            response = await self._send(endpoint, call, scope)
        return self._check(endpoint, call.path, response)

    async def _send(self, endpoint: Endpoint, call: _Call, scope: str | None) -> httpx.Response:
        client = self._clients.for_endpoint(endpoint)
        headers = dict(call.headers or {})
        authorization = self._authorization(endpoint, call.api_auth, scope)
        if authorization:
            headers["Authorization"] = authorization
        url = httpx.URL(endpoint.url).join(call.path)
        params = call.params
        try:
            for _ in range(MAX_REDIRECTS + 1):
                response = await client.request(
                    call.method, url, params=params, headers=headers, content=call.content
                )
                if not response.is_redirect:
                    return response
                url = self._same_host_redirect(endpoint, url, response)
                params = None
        except httpx.TransportError as exc:
            raise translate_transport_error(endpoint, exc) from exc
        raise RegistryProtocolError(f"{_what(endpoint)} redirected more than {MAX_REDIRECTS} times")

    def _authorization(
        self, endpoint: Endpoint, api_auth: ApiAuth, scope: str | None
    ) -> str | None:
        if api_auth == "basic":
            return basic_header(endpoint)
        if api_auth == "bearer":
            return f"Bearer {endpoint.password}" if endpoint.password else None
        if endpoint.url in self._basic_registries:
            return basic_header(endpoint)
        token = self._tokens.get(endpoint.url, endpoint.username or "", scope)
        return f"Bearer {token}" if token is not None else None

    @staticmethod
    def _same_host_redirect(
        endpoint: Endpoint, url: httpx.URL, response: httpx.Response
    ) -> httpx.URL:
        target = url.join(response.headers.get("location", ""))
        if target.host != url.host or target.port != url.port or target.scheme != url.scheme:
            raise RegistryProtocolError(
                f"{_what(endpoint)} redirected to another host ({target.host}); refused"
            )
        return target

    async def _answer_challenge(self, endpoint: Endpoint, challenge: str, scope: str | None) -> str:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if endpoint.username is None:
                raise RegistryAuthFailed(
                    f"Authentication failed: {_what(endpoint)} requires credentials; "
                    f"{endpoint.credentials_hint}"
                )
            self._basic_registries.add(endpoint.url)
            return scope or ""
        if scheme != "bearer" or "realm" not in params:
            raise RegistryAuthFailed(
                f"Authentication failed: {_what(endpoint)} sent an unsupported challenge"
            )
        wanted = params.get("scope") or scope or ""
        token, ttl = await self._fetch_token(
            endpoint, params["realm"], params.get("service", ""), wanted
        )
        self._tokens.put(
            endpoint.url,
            endpoint.username or "",
            params["realm"],
            params.get("service", ""),
            wanted,
            token,
            ttl,
        )
        return wanted

    async def _fetch_token(
        self, endpoint: Endpoint, realm: str, service: str, scope: str
    ) -> tuple[str, float]:
        try:
            realm_url = str(httpx.URL(realm).copy_with(path="/", query=None))
        except (httpx.InvalidURL, ValueError) as exc:
            raise RegistryProtocolError(
                f"{_what(endpoint)} named an invalid token service URL ({realm!r})"
            ) from exc
        realm_endpoint = Endpoint(
            url=realm_url,
            verify_tls=endpoint.verify_tls,
            ca_file=endpoint.ca_file,
            proxy=endpoint.proxy,
            credentials_hint=endpoint.credentials_hint,
            tls_hint=endpoint.tls_hint,
        )
        await self.check_endpoint(realm_endpoint)
        query = {k: v for k, v in {"service": service, "scope": scope}.items() if v}
        headers = {"Authorization": b} if (b := basic_header(endpoint)) else {}
        client = self._clients.for_endpoint(endpoint)
        try:
            response = await client.get(realm, params=query, headers=headers)
        except httpx.TransportError as exc:
            raise translate_transport_error(realm_endpoint, exc) from exc
        if response.status_code in (401, 403):
            raise RegistryAuthFailed(
                f"Authentication failed: the token service of {_what(endpoint)} refused "
                + (
                    f"the credentials of '{endpoint.username}'"
                    if endpoint.username
                    else f"anonymous access; {endpoint.credentials_hint}"
                )
            )
        self._check(realm_endpoint, realm, response)
        body = response.json()
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str):
            raise RegistryProtocolError(f"The token service of {_what(endpoint)} sent no token")
        return token, float(body.get("expires_in") or 60)

    @staticmethod
    def _check(endpoint: Endpoint, path: str, response: httpx.Response) -> httpx.Response:
        status = response.status_code
        if 200 <= status < 300:
            return response
        where = f"{_what(endpoint)} ({response.request.method} {path} → {status})"
        if status == 401:
            hint = (
                "check the credentials"
                if endpoint.username or endpoint.password
                else f"it needs credentials: {endpoint.credentials_hint}"
            )
            raise RegistryAuthFailed(f"Authentication failed: {where}; {hint}")
        if status == 403:
            raise RegistryForbidden(f"Access denied: {where}; the account lacks permission")
        if status == 404:
            raise RegistryNotFound(f"Not found: {where}")
        if status == 429 or status >= 500:
            raise RegistryUnavailable(
                f"Registry unavailable: {where}", retry_after=_retry_after(response)
            )
        raise RegistryProtocolError(f"Unexpected answer from {where}: {_error_text(response)}")


def _error_text(response: httpx.Response) -> str:
    """The registry's own error message, as far as it can be found (kept short)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        for key in ("error_message", "message", "detail", "error"):
            if isinstance(body.get(key), str):
                return str(body[key])[:200]
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message", ""))[:200]
    return response.text[:200]


def _string_list(body: Any, key: str, endpoint: Endpoint) -> list[str]:
    if not isinstance(body, dict):
        raise RegistryProtocolError(f"{_what(endpoint)} sent a malformed '{key}' listing")
    values = body.get(key)
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise RegistryProtocolError(f"{_what(endpoint)} sent a malformed '{key}' listing")
    return values


def _next_link(endpoint: Endpoint, response: httpx.Response) -> str | None:
    link = response.links.get("next", {}).get("url")
    if not link:
        return None
    target = httpx.URL(endpoint.url).join(link)
    if target.host != httpx.URL(endpoint.url).host:
        raise RegistryProtocolError(f"{_what(endpoint)} paged to another host; refused")
    return str(target.raw_path.decode())
