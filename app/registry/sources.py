"""Source adapters (SPEC §4.1): list the repositories of a Harbor project, a Quay namespace,
or a namespace of any OCI registry, and test a source for the verify endpoint.

Every adapter returns names *without* the namespace prefix, sorted and de-duplicated.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app.errors import InvalidRequest
from app.registry.client import ApiAuth, RegistryClient
from app.registry.errors import (
    RegistryError,
    RegistryForbidden,
    RegistryNotFound,
    RegistryProtocolError,
)
from app.registry.http import Endpoint
from app.registry.ssrf import HostNotResolvable
from app.statuses import RegistryType

HARBOR_PAGE_SIZE = 100
MAX_PAGES = 100_000


class NamespaceNotFound(RegistryNotFound):
    """The project / organization / namespace does not exist at the source."""


@dataclass(frozen=True)
class Source:
    kind: RegistryType
    endpoint: Endpoint
    namespace: str


@dataclass(frozen=True)
class VerifyOutcome:
    success: bool
    message: str


Lister = Callable[[RegistryClient, Source], Awaitable[list[str]]]


def _strip(namespace: str, names: list[str]) -> list[str]:
    prefix = namespace + "/"
    return sorted(
        {n[len(prefix) :] for n in names if n.startswith(prefix) and len(n) > len(prefix)}
    )


def _items(body: Any, source: Source, key: str | None) -> list[dict[str, Any]]:
    items = body.get(key) if key and isinstance(body, dict) else body
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise RegistryProtocolError(
            f"{source.kind.value} registry {source.endpoint.url} sent a malformed repository list"
        )
    return items


async def list_harbor(client: RegistryClient, source: Source) -> list[str]:
    """Harbor API v2.0; follows ``Link: rel=next`` and keeps paging while pages come back full."""
    # Always "basic": Harbor's REST API answers 401 without a registry challenge, so it
    # must not enter the /v2 token flow; with no username no header is sent.
    auth: ApiAuth = "basic"
    path = f"/api/v2.0/projects/{source.namespace}/repositories"
    names: list[str] = []
    for page in range(1, MAX_PAGES):
        params = {"page": page, "page_size": HARBOR_PAGE_SIZE}
        try:
            body, response = await client.get_json(
                source.endpoint, path, params=params, api_auth=auth
            )
        except RegistryNotFound as exc:
            raise NamespaceNotFound(
                f"Project '{source.namespace}' not found on Harbor registry {source.endpoint.url}"
            ) from exc
        except RegistryForbidden as exc:
            # Harbor ≥ 2.0.1 answers 403 (not 404) for a project the account cannot see.
            raise RegistryForbidden(
                f"Access denied to project '{source.namespace}' on Harbor registry "
                f"{source.endpoint.url}: the project does not exist or the account may not "
                "read it"
            ) from exc
        items = _items(body, source, None)
        names.extend(str(item.get("name", "")) for item in items)
        more = "next" in response.links or len(items) >= HARBOR_PAGE_SIZE
        if not items or not more:
            break
    return _strip(source.namespace, names)


async def list_quay(client: RegistryClient, source: Source) -> list[str]:
    """Quay API v1 ``/api/v1/repository?namespace=``, following ``next_page`` tokens."""
    token = source.endpoint.password
    # public=true always: with a token Quay otherwise lists only repositories the token has
    # explicit permissions on, and a public namespace would look empty.
    params: dict[str, str | int] = {"namespace": source.namespace, "public": "true"}
    names: list[str] = []
    for _ in range(MAX_PAGES):
        body, _response = await client.get_json(
            source.endpoint,
            "/api/v1/repository",
            params=params,
            api_auth="bearer" if token else None,
        )
        for item in _items(body, source, "repositories"):
            if item.get("namespace", source.namespace) == source.namespace:
                names.append(f"{source.namespace}/{item.get('name', '')}")
        next_page = body.get("next_page") if isinstance(body, dict) else None
        if not next_page:
            break
        params["next_page"] = str(next_page)
    if not names:
        await _quay_namespace_exists(client, source)
    return _strip(source.namespace, names)


async def _quay_namespace_exists(client: RegistryClient, source: Source) -> None:
    auth: ApiAuth = "bearer" if source.endpoint.password else None
    for kind in ("organization", "users"):
        try:
            await client.get_json(
                source.endpoint, f"/api/v1/{kind}/{source.namespace}", api_auth=auth
            )
            return
        except RegistryNotFound:
            continue
    raise NamespaceNotFound(
        f"Namespace '{source.namespace}' not found on Quay registry {source.endpoint.url} "
        "(neither an organization nor a user)"
    )


async def list_oci(client: RegistryClient, source: Source) -> list[str]:
    """``/v2/_catalog`` of any distribution registry, keeping names under ``{namespace}/``."""
    names = _strip(source.namespace, await client.catalog(source.endpoint))
    if not names:
        raise NamespaceNotFound(
            f"No repositories under '{source.namespace}/' in the catalog of "
            f"{source.endpoint.url}; check external_namespace"
        )
    return names


LISTERS: dict[RegistryType, Lister] = {
    RegistryType.HARBOR: list_harbor,
    RegistryType.QUAY: list_quay,
    RegistryType.OCI: list_oci,
}


async def list_repositories(client: RegistryClient, source: Source) -> list[str]:
    """The source namespace's repositories, after the SSRF rules allowed the connection."""
    await client.check_endpoint(source.endpoint)
    return await LISTERS[source.kind](client, source)


async def verify_source(client: RegistryClient, source: Source) -> VerifyOutcome:
    """Test DNS and SSRF rules, TLS, credentials and the namespace; never raises for the source."""
    try:
        names = await list_repositories(client, source)
    except HostNotResolvable as exc:
        return VerifyOutcome(False, f"DNS lookup failed: {exc.detail}")
    except InvalidRequest as exc:
        return VerifyOutcome(False, exc.detail)
    except RegistryError as exc:
        return VerifyOutcome(False, exc.detail)
    count = len(names)
    noun = "repository" if count == 1 else "repositories"
    return VerifyOutcome(
        True, f"Connection successful: {count} {noun} visible in '{source.namespace}'"
    )
