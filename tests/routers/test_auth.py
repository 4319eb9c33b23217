"""Authentication and authorization come before everything else, with the right codes."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwt

from tests.conftest import SUPERUSER, auth, config_body, make_token
from tests.routers.test_mirror_config import assert_api_error

ENDPOINTS = [
    ("POST", ""),
    ("GET", ""),
    ("PUT", ""),
    ("DELETE", ""),
    ("GET", "/repositories"),
    ("POST", "/sync-now"),
    ("POST", "/sync-cancel"),
    ("POST", "/verify"),
]


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def alg_none_token() -> str:
    now = int(time.time())
    header = _b64({"alg": "none", "typ": "JWT"})
    payload = _b64({"sub": "alice", "scope": "org:admin", "exp": now + 3600})
    return f"{header}.{payload}."


def rs256_token() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    now = int(time.time())
    return jwt.encode(
        {"sub": "alice", "scope": "org:admin", "exp": now + 3600}, pem.decode(), algorithm="RS256"
    )


BAD_TOKENS = {
    "bad signature": make_token(secret="another-secret-" + "y" * 32),
    "expired": make_token(lifetime=-60),
    "alg none": alg_none_token(),
    "wrong algorithm": rs256_token(),
    "malformed": "not-a-jwt",
    "no exp": jwt.encode({"sub": "alice", "scope": "org:admin"}, "x", algorithm="HS256"),
}


async def _call(
    client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str]
) -> httpx.Response:
    # A deliberately invalid body: auth must be decided before the body is looked at.
    return await client.request(method, url, content=b"{broken", headers=headers)


@pytest.mark.parametrize(("method", "suffix"), ENDPOINTS)
async def test_no_token_is_401_before_body(
    client: httpx.AsyncClient, mirror_url: str, method: str, suffix: str
) -> None:
    response = await _call(client, method, mirror_url + suffix, {})
    assert_api_error(response, 401, "invalid_token", "Missing bearer token")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
async def test_bad_tokens_are_401(client: httpx.AsyncClient, mirror_url: str, kind: str) -> None:
    headers = {"Authorization": f"Bearer {BAD_TOKENS[kind]}"}
    response = await _call(client, "POST", mirror_url, headers)
    assert_api_error(response, 401, "invalid_token")


async def test_expired_token_message(client: httpx.AsyncClient, mirror_url: str) -> None:
    response = await client.get(mirror_url, headers=auth(lifetime=-60))
    assert_api_error(response, 401, "invalid_token", "expired")


@pytest.mark.parametrize(("method", "suffix"), ENDPOINTS)
async def test_missing_scope_is_403_before_body(
    client: httpx.AsyncClient, mirror_url: str, method: str, suffix: str
) -> None:
    response = await _call(client, method, mirror_url + suffix, auth(scope="repo:read"))
    assert_api_error(response, 403, "insufficient_scope", "org:admin")


@pytest.mark.parametrize(("method", "suffix"), ENDPOINTS)
async def test_non_admin_is_403_before_body(
    client: httpx.AsyncClient, mirror_url: str, method: str, suffix: str
) -> None:
    response = await _call(client, method, mirror_url + suffix, auth("mallory"))
    assert_api_error(response, 403, "insufficient_scope", "does not administer 'myorg'")


@pytest.mark.parametrize(("method", "suffix"), ENDPOINTS)
async def test_unknown_org_is_403_for_non_superuser(
    client: httpx.AsyncClient, org: str, method: str, suffix: str
) -> None:
    url = "/api/v1/organization/nosuchorg/mirror" + suffix
    response = await _call(client, method, url, auth())
    assert_api_error(response, 403, "insufficient_scope")


@pytest.mark.parametrize(("method", "suffix"), ENDPOINTS)
async def test_unknown_org_is_404_for_superuser(
    client: httpx.AsyncClient, method: str, suffix: str
) -> None:
    url = "/api/v1/organization/nosuchorg/mirror" + suffix
    response = await _call(client, method, url, auth(SUPERUSER))
    assert_api_error(response, 404, "not_found", "Organization 'nosuchorg' does not exist")


async def test_superuser_administers_every_org(client: httpx.AsyncClient, mirror_url: str) -> None:
    response = await client.post(mirror_url, json=config_body(), headers=auth(SUPERUSER))
    assert response.status_code == 201, response.text
    assert (await client.get(mirror_url, headers=auth(SUPERUSER))).status_code == 200


async def test_superuser_still_needs_scope(client: httpx.AsyncClient, mirror_url: str) -> None:
    response = await client.get(mirror_url, headers=auth(SUPERUSER, scope=""))
    assert_api_error(response, 403, "insufficient_scope")


async def test_unknown_route_is_api_error(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing-here", headers=auth())
    assert_api_error(response, 404, "not_found", "No such endpoint")


async def test_wrong_method_is_api_error(client: httpx.AsyncClient, mirror_url: str) -> None:
    response = await client.patch(mirror_url, headers=auth())
    assert_api_error(response, 405, "method_not_allowed")
