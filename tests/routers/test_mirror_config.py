"""createOrgMirrorConfig / get / update / delete: shapes, validation rules, round trips."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import auth, config_body

ERROR_KEYS = {"status", "type", "title", "detail", "error_message", "error_type"}
COUNT_KEYS = {"NEVER_RUN", "SYNC_NOW", "SYNCING", "SUCCESS", "FAIL", "CANCEL", "SKIP"}


def assert_api_error(response: httpx.Response, status: int, title: str, *needles: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["status"] == status
    assert body["title"] == body["error_type"] == title
    assert body["detail"] == body["error_message"]
    assert body["type"].endswith(f"/api/v1/error/{title}")
    for needle in needles:
        assert needle in body["detail"], body["detail"]


async def test_create_returns_config_location_and_normalised_fields(
    client: httpx.AsyncClient, mirror_url: str
) -> None:
    body = config_body(
        visibility="PUBLIC",
        external_registry_type="Harbor",
        external_registry_url="HTTP://127.0.0.1:8443/",
        sync_start_date="2030-01-01T02:00:00.750+02:00",
        external_registry_username="puller",
        external_registry_password="source-pass",
        repository_filters=["app-*", "!app-legacy"],
    )
    response = await client.post(mirror_url, json=body, headers=auth())
    assert response.status_code == 201, response.text
    assert response.headers["location"] == mirror_url
    got = response.json()
    assert got["visibility"] == "public"
    assert got["external_registry_type"] == "harbor"
    assert got["external_registry_url"] == "http://127.0.0.1:8443"
    assert got["sync_start_date"] == "2030-01-01T00:00:00Z"
    assert got["sync_status"] == "NEVER_RUN"
    assert got["is_enabled"] is True
    assert got["skopeo_timeout"] == 300
    assert got["has_external_registry_password"] is True
    assert "external_registry_password" not in got
    assert got["external_registry_username"] == "puller"
    assert got["repository_filters"] == ["app-*", "!app-legacy"]
    assert set(got["repo_sync_status_counts"]) == COUNT_KEYS
    assert all(v == 0 for v in got["repo_sync_status_counts"].values())
    assert got["last_sync"] is None
    assert got["sync_expiration_date"] is None
    assert got["creation_date"].endswith("Z")
    assert len(got["creation_date"]) == 20


async def test_get_matches_create_response(
    client: httpx.AsyncClient, mirror_url: str, config: dict[str, Any]
) -> None:
    response = await client.get(mirror_url, headers=auth())
    assert response.status_code == 200
    assert response.json() == config


async def test_get_without_config_is_404(client: httpx.AsyncClient, mirror_url: str) -> None:
    response = await client.get(mirror_url, headers=auth())
    assert_api_error(response, 404, "not_found", "has no mirror config")


async def test_create_twice_is_400(
    client: httpx.AsyncClient, mirror_url: str, config: dict[str, Any]
) -> None:
    response = await client.post(mirror_url, json=config_body(), headers=auth())
    assert_api_error(response, 400, "invalid_request", "already has a mirror config")


async def test_delete_then_create_again(
    client: httpx.AsyncClient, mirror_url: str, config: dict[str, Any]
) -> None:
    response = await client.delete(mirror_url, headers=auth())
    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(mirror_url, headers=auth())).status_code == 404
    assert (await client.delete(mirror_url, headers=auth())).status_code == 404
    response = await client.post(mirror_url, json=config_body(), headers=auth())
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"sync_interval": 59}, "sync_interval: must be at least 60"),
        ({"sync_interval": 31_536_001}, "sync_interval: must be at most 31536000"),
        ({"sync_interval": "3600"}, "sync_interval: must be an integer"),
        ({"sync_start_date": "yesterday"}, "sync_start_date: must be an ISO 8601 date-time"),
        ({"sync_start_date": "2030-13-01T00:00:00Z"}, "sync_start_date"),
        ({"sync_start_date": 1700000000}, "sync_start_date: must be an ISO 8601"),
        ({"visibility": "secret"}, "visibility: must be one of"),
        ({"external_registry_type": "docker"}, "external_registry_type: must be one of"),
        ({"unknown_field": 1}, "unknown_field: unknown field"),
        ({"external_registry_url": "ftp://127.0.0.1"}, "external_registry_url"),
        ({"external_registry_url": "http://u:p@127.0.0.1"}, "credentials"),
        ({"external_registry_url": "http://127.0.0.1/?a=b"}, "query"),
        ({"external_namespace": "Bad Name"}, "external_namespace: must be a registry path"),
        ({"external_namespace": ""}, "external_namespace: must be at least 1 characters"),
        ({"repository_filters": "app-*"}, "repository_filters: must be a list"),
        ({"repository_filters": [1]}, "repository_filters.0: must be a string"),
        ({"repository_filters": [""]}, "repository_filters.0"),
        ({"repository_filters": ["a"] * 101}, "repository_filters: must have at most 100"),
        ({"skopeo_timeout": 29}, "skopeo_timeout: must be at least 30"),
        ({"skopeo_timeout": 3601}, "skopeo_timeout: must be at most 3600"),
        ({"is_enabled": "yes"}, "is_enabled: must be true or false"),
        ({"robot_username": "mirrorbot"}, "robot_username: must be 'orgname+robotname'"),
        ({"robot_username": "myorg+nobody"}, "robot 'myorg+nobody' does not exist"),
        ({"external_registry_config": {"verify_tls": True, "colour": "red"}}, "colour"),
        (
            {"external_registry_config": {"proxy": {"http_proxy": "not a url"}}},
            "external_registry_config.proxy.http_proxy",
        ),
        (
            {"external_registry_config": {"proxy": {"https_proxy": "http://nope.invalid:3128"}}},
            "external_registry_config.proxy.https_proxy: host 'nope.invalid' could not be resolved",
        ),
    ],
)
async def test_create_validation_rules(
    client: httpx.AsyncClient, org: str, mirror_url: str, overrides: dict[str, Any], needle: str
) -> None:
    response = await client.post(mirror_url, json=config_body(**overrides), headers=auth())
    assert_api_error(response, 400, "invalid_request", needle)


@pytest.mark.parametrize(
    "field",
    [
        "external_registry_type",
        "external_registry_url",
        "external_namespace",
        "robot_username",
        "visibility",
        "sync_interval",
        "sync_start_date",
    ],
)
async def test_create_missing_required_field(
    client: httpx.AsyncClient, mirror_url: str, field: str
) -> None:
    body = config_body()
    del body[field]
    response = await client.post(mirror_url, json=body, headers=auth())
    assert_api_error(response, 400, "invalid_request", f"{field}: field required")


async def test_create_with_robot_of_another_org(client: httpx.AsyncClient, mirror_url: str) -> None:
    other = auth("bob")
    assert (
        await client.post("/api/v1/organization/", json={"name": "other"}, headers=other)
    ).status_code == 201
    put = await client.put(
        "/api/v1/organization/other/robots/bot", json={"token": "t"}, headers=other
    )
    assert put.status_code == 201
    response = await client.post(
        mirror_url, json=config_body(robot_username="other+bot"), headers=auth()
    )
    assert_api_error(response, 400, "invalid_request", "belongs to organization 'other'")


@pytest.mark.parametrize(
    "url",
    ["http://10.1.2.3", "http://169.254.169.254", "http://[::1]:5000", "http://192.168.0.1"],
)
async def test_create_refuses_private_addresses(
    client: httpx.AsyncClient, mirror_url: str, url: str
) -> None:
    response = await client.post(
        mirror_url, json=config_body(external_registry_url=url), headers=auth()
    )
    assert_api_error(response, 400, "invalid_request")
    assert response.json()["detail"] == "The provided registry URL is not allowed"


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"", b"[]", b'"text"', b"null"],
)
async def test_malformed_bodies_are_400(
    client: httpx.AsyncClient, mirror_url: str, raw: bytes
) -> None:
    response = await client.post(
        mirror_url, content=raw, headers={**auth(), "Content-Type": "application/json"}
    )
    assert_api_error(response, 400, "invalid_request")
    assert response.status_code != 422


async def test_get_round_trips_into_put_unchanged(
    client: httpx.AsyncClient, mirror_url: str
) -> None:
    body = config_body(
        external_registry_username="u",
        external_registry_password="p",
        external_registry_config={
            "verify_tls": False,
            "proxy": {"https_proxy": "http://pu:pp@127.0.0.1:3128", "no_proxy": ".corp"},
        },
    )
    assert (await client.post(mirror_url, json=body, headers=auth())).status_code == 201
    before = (await client.get(mirror_url, headers=auth())).json()
    assert before["external_registry_config"]["proxy"]["https_proxy"] == "http://***@127.0.0.1:3128"
    response = await client.put(mirror_url, json=before, headers=auth())
    assert response.status_code == 200, response.text
    assert response.json() == before
    assert (await client.get(mirror_url, headers=auth())).json() == before


async def test_put_changes_only_sent_fields(
    client: httpx.AsyncClient, mirror_url: str, config: dict[str, Any]
) -> None:
    response = await client.put(
        mirror_url, json={"sync_interval": 120, "visibility": "Public"}, headers=auth()
    )
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["sync_interval"] == 120
    assert got["visibility"] == "public"
    assert {k: v for k, v in got.items() if k not in {"sync_interval", "visibility"}} == {
        k: v for k, v in config.items() if k not in {"sync_interval", "visibility"}
    }


async def test_put_password_keep_set_and_clear(
    client: httpx.AsyncClient, mirror_url: str, config: dict[str, Any]
) -> None:
    assert config["has_external_registry_password"] is False
    got = (
        await client.put(mirror_url, json={"external_registry_password": "x"}, headers=auth())
    ).json()
    assert got["has_external_registry_password"] is True
    got = (await client.put(mirror_url, json={"sync_interval": 600}, headers=auth())).json()
    assert got["has_external_registry_password"] is True
    got = (
        await client.put(mirror_url, json={"external_registry_password": ""}, headers=auth())
    ).json()
    assert got["has_external_registry_password"] is False
    await client.put(mirror_url, json={"external_registry_password": "y"}, headers=auth())
    got = (
        await client.put(mirror_url, json={"external_registry_password": None}, headers=auth())
    ).json()
    assert got["has_external_registry_password"] is False


async def test_put_cannot_change_registry_type(
    client: httpx.AsyncClient, mirror_url: str, config: dict[str, Any]
) -> None:
    response = await client.put(mirror_url, json={"external_registry_type": "quay"}, headers=auth())
    assert_api_error(response, 400, "invalid_request", "external_registry_type: cannot be changed")
    same = await client.put(mirror_url, json={"external_registry_type": "harbor"}, headers=auth())
    assert same.status_code == 200


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"sync_interval": 59}, "sync_interval: must be at least 60"),
        ({"bogus": True}, "bogus: unknown field"),
        ({"visibility": None}, "visibility: must not be null"),
        ({"skopeo_timeout": 3601}, "skopeo_timeout: must be at most 3600"),
        ({"robot_username": "myorg+ghost"}, "does not exist"),
        ({"external_registry_url": "http://10.0.0.1"}, "not allowed"),
    ],
)
async def test_put_validation(
    client: httpx.AsyncClient,
    mirror_url: str,
    config: dict[str, Any],
    body: dict[str, Any],
    needle: str,
) -> None:
    response = await client.put(mirror_url, json=body, headers=auth())
    assert_api_error(response, 400, "invalid_request", needle)
    assert (await client.get(mirror_url, headers=auth())).json() == config


async def test_put_without_config_is_404(client: httpx.AsyncClient, mirror_url: str) -> None:
    response = await client.put(mirror_url, json={"sync_interval": 120}, headers=auth())
    assert_api_error(response, 404, "not_found")


async def test_put_sync_start_date_reschedules(
    client: httpx.AsyncClient, mirror_url: str, config: dict[str, Any]
) -> None:
    got = (
        await client.put(
            mirror_url, json={"sync_start_date": "2031-05-05T10:00:00"}, headers=auth()
        )
    ).json()
    assert got["sync_start_date"] == "2031-05-05T10:00:00Z"
