"""Registry authentication pieces: challenges, scopes, Basic headers and the token cache."""

from __future__ import annotations

import base64
import re
import time

from app.registry.http import Endpoint

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_REPO_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?:tags|manifests|blobs)/")


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, params = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM.findall(params))


def scope_for_path(path: str) -> str | None:
    path = path.split("?", 1)[0]
    if path.rstrip("/") == "/v2/_catalog":
        return "registry:catalog:*"
    match = _REPO_PATH.match(path)
    return f"repository:{match['name']}:pull" if match else None


def basic_header(endpoint: Endpoint) -> str | None:
    if endpoint.username is None:
        return None
    raw = f"{endpoint.username}:{endpoint.password or ''}".encode()
    return "Basic " + base64.b64encode(raw).decode()


class TokenCache:
    """Bearer tokens per (realm, service, scope), dropped shortly before they expire."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, str, str], tuple[str, float]] = {}
        self._by_scope: dict[tuple[str, str, str], tuple[str, str]] = {}

    def get(self, url: str, user: str, scope: str | None) -> str | None:
        if scope is None:
            return None
        located = self._by_scope.get((url, user, scope))
        if located is None:
            return None
        entry = self._tokens.get((*located, scope, user))
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def put(
        self, url: str, user: str, realm: str, service: str, scope: str, token: str, ttl: float
    ) -> None:
        self._tokens[(realm, service, scope, user)] = (token, time.monotonic() + max(ttl - 10, 1))
        self._by_scope[(url, user, scope)] = (realm, service)
