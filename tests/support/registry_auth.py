"""httpx auth for registries: anonymous, Basic (htpasswd) and the distribution token flow.

A test helper, not the app's client: it follows whatever the registry's 401 challenge asks for
and caches the last token per repository so a push does not fetch a token per request.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Generator

import httpx

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_REPO_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?:blobs|manifests|tags)/")


class RegistryAuthError(RuntimeError):
    """The token realm refused the credentials or answered something unusable."""

    def __init__(self, status_code: int, body: str) -> None:
        super().__init__(f"token request failed with {status_code}: {body}")
        self.status_code = status_code


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="…",service="…"` → ("bearer", {"realm": …, "service": …})."""
    scheme, _, params = header.partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM.findall(params))


def _cache_key(request: httpx.Request) -> str:
    match = _REPO_PATH.match(request.url.path)
    return match["name"] if match else request.url.path


class RegistryAuth(httpx.Auth):
    """Answer Basic or Bearer challenges with `username`/`password` (or anonymously)."""

    requires_response_body = True

    def __init__(self, username: str | None = None, password: str | None = None) -> None:
        self._basic = _basic_header(username, password) if username is not None else None
        self._tokens: dict[str, str] = {}
        self._basic_registry = False
        self.token_requests = 0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        key = _cache_key(request)
        self._authorize(request, key)
        response = yield request
        if response.status_code != 401:
            return
        scheme, params = parse_challenge(response.headers.get("www-authenticate", ""))
        if scheme == "basic" and self._basic is not None:
            self._basic_registry = True
            self._authorize(request, key)
        elif scheme == "bearer" and "realm" in params:
            token_response = yield self._token_request(params)
            self._tokens[key] = _bearer(token_response)
            self._authorize(request, key)
        else:
            return
        yield request

    def _authorize(self, request: httpx.Request, key: str) -> None:
        if token := self._tokens.get(key):
            request.headers["Authorization"] = token
        elif self._basic_registry and self._basic is not None:
            request.headers["Authorization"] = self._basic

    def _token_request(self, challenge: dict[str, str]) -> httpx.Request:
        self.token_requests += 1
        params = {k: v for k, v in challenge.items() if k in ("service", "scope")}
        headers = {"Authorization": self._basic} if self._basic else {}
        return httpx.Request("GET", challenge["realm"], params=params, headers=headers)


def _basic_header(username: str, password: str | None) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password or ''}".encode()).decode()


def _bearer(response: httpx.Response) -> str:
    if response.status_code != 200:
        raise RegistryAuthError(response.status_code, response.text)
    body = response.json()
    token = body.get("token") or body.get("access_token")
    if not token:
        raise RegistryAuthError(response.status_code, "no token in the realm's answer")
    return f"Bearer {token}"


AuthArg = httpx.Auth | tuple[str, str] | None


def resolve_auth(client: httpx.AsyncClient, auth: AuthArg) -> httpx.Auth:
    """A ready `httpx.Auth`, a (user, password) pair, or None: the client's own auth if it has
    one, else anonymous (which still needs the token dance on a token registry)."""
    if isinstance(auth, tuple):
        return RegistryAuth(*auth)
    return auth or client.auth or RegistryAuth()
