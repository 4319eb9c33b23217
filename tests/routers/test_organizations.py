"""Organizations and robot accounts (SPEC §3.2, §3.3) and secrets at rest (§3.4)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.runtime import Runtime
from tests.conftest import SUPERUSER, auth, config_body
from tests.routers.test_mirror_config import assert_api_error


async def test_create_org_makes_caller_admin(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/organization/", json={"name": "team-a"}, headers=auth("carol")
    )
    assert response.status_code == 201, response.text
    assert response.json()["admins"] == ["carol"]
    got = await client.get("/api/v1/organization/team-a", headers=auth("carol"))
    assert got.status_code == 200
    assert got.json()["name"] == "team-a"
    assert (
        await client.get("/api/v1/organization/team-a", headers=auth("dave"))
    ).status_code == 403


@pytest.mark.parametrize("name", ["A", "x", "Upper", "has space", "a" * 256, "dots.not.ok"])
async def test_create_org_rejects_bad_names(client: httpx.AsyncClient, name: str) -> None:
    response = await client.post("/api/v1/organization/", json={"name": name}, headers=auth())
    assert_api_error(response, 400, "invalid_request", "name")


async def test_create_org_twice_is_400(client: httpx.AsyncClient, org: str) -> None:
    response = await client.post("/api/v1/organization/", json={"name": org}, headers=auth("bob"))
    assert_api_error(response, 400, "invalid_request", "already exists")


async def test_create_org_needs_scope_before_body(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/organization/", content=b"{", headers=auth(scope="x"))
    assert_api_error(response, 403, "insufficient_scope")
    response = await client.post("/api/v1/organization/", content=b"{")
    assert_api_error(response, 401, "invalid_token")


async def test_unknown_org_for_superuser_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/organization/ghost", headers=auth(SUPERUSER))
    assert_api_error(response, 404, "not_found")


async def test_robot_put_creates_then_replaces(client: httpx.AsyncClient, org: str) -> None:
    url = f"/api/v1/organization/{org}/robots/builder"
    created = await client.put(url, json={"description": "one", "token": "t1"}, headers=auth())
    assert created.status_code == 201
    assert created.json()["name"] == "myorg+builder"
    replaced = await client.put(url, json={"description": "two", "token": "t2"}, headers=auth())
    assert replaced.status_code == 200
    assert replaced.json()["description"] == "two"


async def test_robot_list_never_returns_tokens(client: httpx.AsyncClient, org: str) -> None:
    response = await client.get(f"/api/v1/organization/{org}/robots", headers=auth())
    assert response.status_code == 200
    robots = response.json()["robots"]
    assert [r["name"] for r in robots] == ["myorg+mirrorbot"]
    assert "robot-token-value" not in response.text
    assert set(robots[0]) == {"name", "description", "created"}


@pytest.mark.parametrize(
    ("shortname", "body", "needle"),
    [
        ("Bad-Name", {"token": "t"}, "shortname"),
        ("ok", {"description": "no token"}, "token: field required"),
        ("ok", {"token": ""}, "token: must be at least 1 characters"),
        ("ok", {"token": "t", "extra": 1}, "extra: unknown field"),
    ],
)
async def test_robot_put_validation(
    client: httpx.AsyncClient, org: str, shortname: str, body: dict[str, Any], needle: str
) -> None:
    response = await client.put(
        f"/api/v1/organization/{org}/robots/{shortname}", json=body, headers=auth()
    )
    assert_api_error(response, 400, "invalid_request", needle)


async def test_robot_delete_refused_while_config_uses_it(
    client: httpx.AsyncClient, org: str, mirror_url: str, config: dict[str, Any]
) -> None:
    url = f"/api/v1/organization/{org}/robots/mirrorbot"
    assert_api_error(await client.delete(url, headers=auth()), 400, "invalid_request", "is used by")
    await client.delete(mirror_url, headers=auth())
    assert (await client.delete(url, headers=auth())).status_code == 204
    assert_api_error(await client.delete(url, headers=auth()), 404, "not_found")


async def test_robot_endpoints_need_org_admin(client: httpx.AsyncClient, org: str) -> None:
    url = f"/api/v1/organization/{org}/robots"
    assert (await client.get(url, headers=auth("mallory"))).status_code == 403
    put = await client.put(f"{url}/x", content=b"{", headers=auth("mallory"))
    assert_api_error(put, 403, "insufficient_scope")


async def test_secrets_are_encrypted_at_rest(
    client: httpx.AsyncClient, runtime: Runtime, mirror_url: str
) -> None:
    secrets = ["robot-token-value", "source-password-123", "proxy-pass-456"]
    body = config_body(
        external_registry_password=secrets[1],
        external_registry_config={
            "proxy": {"http_proxy": f"http://pu:{secrets[2]}@127.0.0.1:3128"}
        },
    )
    response = await client.post(mirror_url, json=body, headers=auth())
    assert response.status_code == 201
    assert not any(s in response.text for s in secrets)
    dump = []
    async with runtime.sessionmaker() as session:
        for table in ("robot_accounts", "org_mirror_configs", "audit_events"):
            rows = (await session.execute(text(f"SELECT * FROM {table}"))).all()
            assert rows
            dump.append(repr(rows))
    raw = "\n".join(dump)
    for secret in secrets:
        assert secret not in raw
    assert "v1:" in raw  # the ciphertext form, with its key id, is what is stored
