"""The target registry the organizations live in, and Quay's repository-creation API.

``ORGMIRROR_TARGET_REGISTRY`` is ``host[:port]`` (HTTPS), or ``http://host[:port]`` for a
plain-HTTP registry. Images go to ``{host}/{org}/{repo}``.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.registry.client import RegistryClient
from app.registry.errors import RegistryError
from app.registry.http import Endpoint

TARGET_TLS_HINT = "check ORGMIRROR_CA_FILE or ORGMIRROR_TARGET_TLS_VERIFY"


@dataclass(frozen=True)
class TargetRegistry:
    host: str
    scheme: str
    tls_verify: bool
    ca_file: str | None = None
    kind: str = "oci"
    api_url: str | None = None
    api_token: str | None = None

    @classmethod
    def parse(
        cls,
        value: str,
        *,
        tls_verify: bool,
        ca_file: str | None = None,
        kind: str = "oci",
        api_url: str | None = None,
        api_token: str | None = None,
    ) -> TargetRegistry:
        scheme, sep, rest = value.partition("://")
        if not sep:
            scheme, rest = "https", value
        if scheme not in ("http", "https") or not rest.strip("/"):
            raise ValueError(
                "ORGMIRROR_TARGET_REGISTRY must be host[:port] or http(s)://host[:port], "
                f"got {value!r}"
            )
        return cls(
            host=rest.strip("/"),
            scheme=scheme,
            tls_verify=tls_verify and scheme == "https",
            ca_file=ca_file,
            kind=kind,
            api_url=api_url,
            api_token=api_token,
        )

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def endpoint(self, username: str, password: str) -> Endpoint:
        return Endpoint(
            url=self.url,
            username=username,
            password=password,
            verify_tls=self.tls_verify,
            ca_file=self.ca_file,
            credentials_hint=f"check the token of robot '{username}' (PUT .../robots/...)",
            tls_hint=TARGET_TLS_HINT,
        )

    def reference(self, org: str, repository: str, tag: str) -> str:
        return f"docker://{self.host}/{org}/{repository}:{tag}"


async def ensure_quay_repository(
    client: RegistryClient, target: TargetRegistry, *, org: str, repository: str, visibility: str
) -> None:
    """Create ``org/repository`` through Quay's API (POST /api/v1/repository); existing is fine."""
    if target.kind != "quay":
        return
    endpoint = Endpoint(
        url=target.api_url or target.url,
        password=target.api_token,
        verify_tls=target.tls_verify,
        ca_file=target.ca_file,
        credentials_hint="set ORGMIRROR_TARGET_API_TOKEN",
        tls_hint=TARGET_TLS_HINT,
    )
    body = {
        "namespace": org,
        "repository": repository,
        "visibility": visibility,
        "description": "Mirrored by orgmirror",
        "repo_kind": "image",
    }
    try:
        await client.post_json(endpoint, "/api/v1/repository", body, api_auth="bearer")
    except RegistryError as exc:
        if "already exists" in exc.detail.lower():
            return
        raise exc.__class__(
            f"Quay API {endpoint.url}/api/v1/repository could not create {org}/{repository}: "
            f"{exc.detail}; check ORGMIRROR_TARGET_API_TOKEN (it needs repo:create and admin "
            f"or creator rights in '{org}')",
            retry_after=exc.retry_after,
        ) from exc
