"""The token server issues JWTs that the real distribution 2.8 registry accepts — or refuses,
as the policy says."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Literal

import httpx
import pytest

from tests.support.certs import SigningKey, make_signing_key
from tests.support.fixtures import TOKEN_PASSWORD, TOKEN_USER, RegistryFactory
from tests.support.images import catalog, manifest_digest, push_image
from tests.support.registry_auth import RegistryAuth, RegistryAuthError
from tests.support.registry_server import RegistryServer, TokenAuth
from tests.support.tokenauth import (
    RulePolicy,
    Scope,
    TokenIssuer,
    TokenServer,
    libtrust_key_id,
    member_policy,
)

USER = (TOKEN_USER, TOKEN_PASSWORD)


def _jwt_part(token: str, index: int) -> dict[str, object]:
    part = token.split(".")[index]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def _registry_for(
    registry_factory: RegistryFactory,
    token_server: TokenServer,
    issuer: TokenIssuer,
    trusted: SigningKey,
    service: str,
) -> RegistryServer:
    token_server.add_service(service, member_policy(dict([USER])), issuer)
    token = TokenAuth(token_server.realm, service, issuer.issuer, trusted.cert_file)
    return registry_factory(token=token)


def test_key_id_is_a_libtrust_fingerprint(token_signing_key: SigningKey) -> None:
    kid = libtrust_key_id(token_signing_key.key.public_key())

    assert re.fullmatch(r"([A-Z2-7]{4}:){11}[A-Z2-7]{4}", kid)


@pytest.mark.parametrize("header", ["kid", "x5c"])
async def test_registry_accepts_tokens_identifying_the_key_by(
    header: Literal["kid", "x5c"],
    registry_factory: RegistryFactory,
    token_server: TokenServer,
    token_signing_key: SigningKey,
    registry_client: httpx.AsyncClient,
) -> None:
    issuer = TokenIssuer(token_signing_key, header=header)
    registry = _registry_for(
        registry_factory, token_server, issuer, token_signing_key, f"svc-{header}"
    )

    digest = await push_image(registry_client, registry.url, "myorg/app", "v1", auth=USER)

    assert await manifest_digest(registry_client, registry.url, "myorg/app", "v1", auth=USER) == (
        digest
    )


async def test_registry_refuses_tokens_signed_by_an_untrusted_key(
    registry_factory: RegistryFactory,
    token_server: TokenServer,
    token_signing_key: SigningKey,
    tmp_path: Path,
    registry_client: httpx.AsyncClient,
) -> None:
    impostor = TokenIssuer(make_signing_key(tmp_path / "impostor"))
    registry = _registry_for(
        registry_factory, token_server, impostor, token_signing_key, "svc-impostor"
    )

    response = await registry_client.get(f"{registry.url}/v2/", auth=RegistryAuth(*USER))

    assert response.status_code == 401


async def test_realm_answers_the_token_spec_fields(
    token_registry: RegistryServer, token_server: TokenServer
) -> None:
    assert token_registry.token is not None
    service = token_registry.token.service
    async with httpx.AsyncClient() as client:
        response = await client.get(
            token_server.realm,
            params={"service": service, "scope": "repository:myorg/app:pull,push"},
            auth=USER,
        )

    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"token", "access_token", "expires_in", "issued_at"}
    assert body["token"] == body["access_token"]
    header, claims = _jwt_part(body["token"], 0), _jwt_part(body["token"], 1)
    assert header == {"typ": "JWT", "alg": "ES256", "kid": token_server.issuer.key_id}
    assert claims["aud"] == service
    assert claims["sub"] == TOKEN_USER
    assert claims["access"] == [
        {"type": "repository", "name": "myorg/app", "actions": ["pull", "push"]}
    ]
    assert {"iss", "exp", "nbf", "iat", "jti"} <= set(claims)


async def test_realm_refuses_bad_credentials(
    token_registry: RegistryServer, registry_client: httpx.AsyncClient
) -> None:
    with pytest.raises(RegistryAuthError) as refused:
        await manifest_digest(
            registry_client, token_registry.url, "myorg/app", "v1", auth=(TOKEN_USER, "wrong")
        )

    assert refused.value.status_code == 401


async def test_anonymous_pull_is_refused_unless_the_policy_allows_it(
    token_registry: RegistryServer, token_policy: RulePolicy, registry_client: httpx.AsyncClient
) -> None:
    await push_image(registry_client, token_registry.url, "myorg/app", "v1", auth=USER)
    url = f"{token_registry.url}/v2/myorg/app/manifests/v1"

    refused = await registry_client.head(url, auth=RegistryAuth())
    token_policy.allow(None, "myorg/*", "pull")
    allowed = await registry_client.head(url, auth=RegistryAuth())

    assert refused.status_code == 401
    assert allowed.status_code == 200


async def test_pull_only_user_cannot_push(
    token_registry: RegistryServer, token_policy: RulePolicy, registry_client: httpx.AsyncClient
) -> None:
    token_policy.users["reader"] = "reader-pw"
    token_policy.rules.clear()
    token_policy.allow("reader", "myorg/*", "pull").allow(TOKEN_USER, "*", "*")
    await push_image(registry_client, token_registry.url, "myorg/app", "v1", auth=USER)
    reader = RegistryAuth("reader", "reader-pw")

    assert await manifest_digest(
        registry_client, token_registry.url, "myorg/app", "v1", auth=reader
    )

    with pytest.raises(AssertionError, match="answered 401"):
        await push_image(registry_client, token_registry.url, "myorg/app", "v2", auth=reader)


async def test_catalog_needs_the_registry_catalog_scope(
    token_registry: RegistryServer, token_server: TokenServer, registry_client: httpx.AsyncClient
) -> None:
    await push_image(registry_client, token_registry.url, "myorg/app", "v1", auth=USER)

    assert await catalog(registry_client, token_registry.url, auth=USER) == ["myorg/app"]
    assert token_registry.token is not None
    issued = token_server.services[token_registry.token.service].issued
    assert Scope("registry", "catalog", ("*",)) in issued[-1].granted


def test_scope_parse_keeps_colons_in_the_name() -> None:
    scope = Scope.parse("repository:127.0.0.1:5000/myorg/app:pull,push")

    assert scope == Scope("repository", "127.0.0.1:5000/myorg/app", ("pull", "push"))
    assert str(scope) == "repository:127.0.0.1:5000/myorg/app:pull,push"
