"""Images pushed by images.py are real enough for skopeo to inspect and copy them."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.fixtures import ROBOT_PASSWORD, ROBOT_USER, TOKEN_PASSWORD, TOKEN_USER
from tests.support.images import (
    Kind,
    get_manifest,
    make_image,
    manifest_digest,
    push_index,
    upload_image,
)
from tests.support.registry_server import RegistryServer
from tests.support.skopeo import skopeo, write_authfile

ROBOT = (ROBOT_USER, ROBOT_PASSWORD)
USER = (TOKEN_USER, TOKEN_PASSWORD)


async def test_inspect_raw_returns_the_pushed_oci_manifest_byte_for_byte(
    registry: RegistryServer, registry_client: httpx.AsyncClient
) -> None:
    image = make_image(kind="oci", layers=2)
    await upload_image(registry_client, registry.url, "myorg/app", image, "v1")

    result = await skopeo(
        "inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/myorg/app:v1"
    )

    assert result.check().stdout.encode() == image.manifest


@pytest.mark.parametrize("kind", ["oci", "docker"])
async def test_copy_all_preserves_index_digests_from_token_to_htpasswd_registry(
    kind: Kind,
    token_registry: RegistryServer,
    auth_registry: RegistryServer,
    registry_client: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    digest = await push_index(
        registry_client, token_registry.url, "myorg/multi", "v1", kind=kind, auth=USER
    )
    src_auth = write_authfile(tmp_path / "src.json", {token_registry.host: USER})
    dest_auth = write_authfile(tmp_path / "dest.json", {auth_registry.host: ROBOT})

    result = await skopeo(
        "copy", "--all", "--preserve-digests",
        "--src-tls-verify=false", "--dest-tls-verify=false",
        "--src-authfile", str(src_auth), "--dest-authfile", str(dest_auth),
        f"docker://{token_registry.host}/myorg/multi:v1",
        f"docker://{auth_registry.host}/mirror/multi:v1",
    )  # fmt: skip

    result.check()
    _, index = await get_manifest(
        registry_client, auth_registry.url, "mirror/multi", "v1", auth=ROBOT
    )
    children = [m["digest"] for m in json.loads(index)["manifests"]]
    assert (
        await manifest_digest(registry_client, auth_registry.url, "mirror/multi", "v1", auth=ROBOT)
        == digest
    )
    for child in children:
        assert (
            await manifest_digest(
                registry_client, auth_registry.url, "mirror/multi", child, auth=ROBOT
            )
            == child
        )


async def test_copy_is_refused_without_credentials(
    token_registry: RegistryServer, registry: RegistryServer, registry_client: httpx.AsyncClient
) -> None:
    await push_index(registry_client, token_registry.url, "myorg/multi", "v1", auth=USER)

    result = await skopeo(
        "copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
        f"docker://{token_registry.host}/myorg/multi:v1", f"docker://{registry.host}/x/multi:v1",
    )  # fmt: skip

    assert result.returncode == 1
    assert "unauthorized" in result.stderr
    assert registry.writes() == []
