"""/openapi.json: what generated clients and Swagger UI users rely on (SPEC 1, 1.4, 3.1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from tests.conftest import make_settings

OPERATIONS = {
    "createOrgMirrorConfig": ("post", "/api/v1/organization/{orgname}/mirror"),
    "getOrgMirrorConfig": ("get", "/api/v1/organization/{orgname}/mirror"),
    "updateOrgMirrorConfig": ("put", "/api/v1/organization/{orgname}/mirror"),
    "deleteOrgMirrorConfig": ("delete", "/api/v1/organization/{orgname}/mirror"),
    "listOrgMirrorRepositories": ("get", "/api/v1/organization/{orgname}/mirror/repositories"),
    "syncOrgMirrorNow": ("post", "/api/v1/organization/{orgname}/mirror/sync-now"),
    "cancelOrgMirrorSync": ("post", "/api/v1/organization/{orgname}/mirror/sync-cancel"),
    "verifyOrgMirrorConnection": ("post", "/api/v1/organization/{orgname}/mirror/verify"),
}
API_ERROR_FIELDS = {"status", "type", "title", "detail", "error_message", "error_type"}
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture(scope="module")
async def openapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The schema as a client downloads it (no database is touched to serve it)."""
    tmp = tmp_path_factory.mktemp("openapi")
    settings = make_settings(f"sqlite+aiosqlite:///{tmp / 'unused.db'}", tmp)
    transport = httpx.ASGITransport(app=create_app(settings=settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()
    return schema


def operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method, path, operation


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    target: dict[str, Any] = schema
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return target


def test_org_mirror_operations_keep_their_ids_methods_paths_and_tag(
    openapi: dict[str, Any],
) -> None:
    found = {
        op["operationId"]: (method, path)
        for method, path, op in operations(openapi)
        if "org_mirror" in op.get("tags", [])
    }
    assert found == OPERATIONS
    for method, path, op in operations(openapi):
        if op["operationId"] in OPERATIONS:
            assert op["tags"] == ["org_mirror"], (method, path)


def test_no_operation_documents_a_422(openapi: dict[str, Any]) -> None:
    offenders = [(m, p) for m, p, op in operations(openapi) if "422" in op["responses"]]
    assert offenders == []
    assert "HTTPValidationError" not in openapi["components"]["schemas"]


def test_every_documented_error_uses_the_api_error_schema(openapi: dict[str, Any]) -> None:
    error_responses = 0
    for method, path, op in operations(openapi):
        for code, response in op["responses"].items():
            if code.startswith("2"):
                continue
            error_responses += 1
            body = response["content"]["application/json"]["schema"]
            assert body == {"$ref": "#/components/schemas/ApiErrorBody"}, (method, path, code)
    assert error_responses >= 8 * 3
    api_error = openapi["components"]["schemas"]["ApiErrorBody"]
    assert set(api_error["properties"]) == API_ERROR_FIELDS


def test_org_mirror_operations_document_auth_errors(openapi: dict[str, Any]) -> None:
    for method, path, op in operations(openapi):
        if op["operationId"] in OPERATIONS:
            assert {"401", "403", "404"} <= set(op["responses"]), (method, path)


def test_security_schemes_offer_oauth2_implicit_and_a_pasted_bearer_token(
    openapi: dict[str, Any],
) -> None:
    schemes = openapi["components"]["securitySchemes"]
    implicit = schemes["oauth2_implicit"]
    assert implicit["type"] == "oauth2"
    assert set(implicit["flows"]) == {"implicit"}
    assert "org:admin" in implicit["flows"]["implicit"]["scopes"]
    assert implicit["flows"]["implicit"]["authorizationUrl"]
    bearer = [s for s in schemes.values() if s["type"] == "http" and s["scheme"] == "bearer"]
    assert len(bearer) == 1
    for method, path, op in operations(openapi):
        if op["operationId"] in OPERATIONS:
            names = {name for requirement in op["security"] for name in requirement}
            assert names == {"oauth2_implicit", *(n for n, s in schemes.items() if s in bearer)}, (
                method,
                path,
            )


def test_oauth_authorization_url_comes_from_the_settings(tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        tmp_path,
        oauth_authorization_url="https://sso.example.com/authorize",
    )
    schema = create_app(settings=settings).openapi()
    flow = schema["components"]["securitySchemes"]["oauth2_implicit"]["flows"]["implicit"]
    assert flow["authorizationUrl"] == "https://sso.example.com/authorize"


def request_body(openapi: dict[str, Any], operation_id: str) -> dict[str, Any]:
    method, path = OPERATIONS[operation_id]
    body: dict[str, Any] = openapi["paths"][path][method]["requestBody"]
    return body


@pytest.mark.parametrize(
    "operation_id",
    [
        "createOrgMirrorConfig",
        "updateOrgMirrorConfig",
    ],
)
def test_config_request_body_references_a_described_schema_with_an_example(
    openapi: dict[str, Any], operation_id: str
) -> None:
    body = request_body(openapi, operation_id)
    assert body["required"] is True
    media = body["content"]["application/json"]
    assert set(media["schema"]) == {"$ref"}
    schema = resolve(openapi, media["schema"])
    assert schema.get("description")
    example = media.get("example", schema.get("example"))
    assert isinstance(example, dict), "no example body"
    assert example
    assert set(example) <= set(schema["properties"])


@pytest.mark.parametrize(
    "operation_id",
    [
        "createOrgMirrorConfig",
        "updateOrgMirrorConfig",
    ],
)
def test_config_request_body_describes_every_field(
    openapi: dict[str, Any], operation_id: str
) -> None:
    media = request_body(openapi, operation_id)["content"]["application/json"]
    schema = resolve(openapi, media["schema"])
    undocumented = sorted(
        name for name, prop in schema["properties"].items() if not prop.get("description")
    )
    assert undocumented == []
