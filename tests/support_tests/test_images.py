"""images.py pushes real, well-formed images that the registry stores byte for byte."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import httpx
import pytest

from tests.support.fixtures import ROBOT_PASSWORD, ROBOT_USER, TOKEN_PASSWORD, TOKEN_USER
from tests.support.images import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    Kind,
    delete_manifest,
    get_manifest,
    list_tags,
    make_image,
    make_layer,
    manifest_digest,
    push_image,
    push_index,
    seed,
    sha256_digest,
    upload_image,
)
from tests.support.registry_auth import RegistryAuth
from tests.support.registry_server import RegistryServer


def test_layer_is_a_gzipped_tar_whose_diff_id_is_the_tar_digest() -> None:
    blob, diff_id = make_layer(2048)

    tar_bytes = gzip.decompress(blob)
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        (member,) = tar.getmembers()
    assert member.size == 2048
    assert diff_id == sha256_digest(tar_bytes)


def test_images_are_unique_and_reference_their_blobs() -> None:
    first, second = make_image(kind="oci", layers=3), make_image(kind="oci", layers=3)
    document = json.loads(first.manifest)
    config = json.loads(first.config.data)

    assert first.digest != second.digest
    assert [layer["digest"] for layer in document["layers"]] == [b.digest for b in first.layers]
    assert document["config"]["digest"] == first.config.digest
    assert len(config["rootfs"]["diff_ids"]) == 3


@pytest.mark.parametrize(
    ("kind", "media_type"), [("docker", DOCKER_MANIFEST), ("oci", OCI_MANIFEST)]
)
async def test_push_image_stores_the_exact_manifest(
    kind: Kind, media_type: str, registry: RegistryServer, registry_client: httpx.AsyncClient
) -> None:
    image = make_image(kind=kind)

    digest = await upload_image(registry_client, registry.url, "myorg/app", image, "v1")

    stored_type, stored = await get_manifest(registry_client, registry.url, "myorg/app", "v1")
    assert digest == image.digest
    assert (stored_type, stored) == (media_type, image.manifest)


async def test_chunked_upload_sends_several_patches(
    registry: RegistryServer, registry_client: httpx.AsyncClient
) -> None:
    digest = await push_image(
        registry_client,
        registry.url,
        "myorg/app",
        "v1",
        layers=1,
        layer_size=10_000,
        chunk_size=4096,
    )

    assert await manifest_digest(registry_client, registry.url, "myorg/app", "v1") == digest
    assert registry.count_requests("PATCH", r"/v2/myorg/app/blobs/uploads/.*") >= 3


@pytest.mark.parametrize(
    ("kind", "media_type"), [("oci", OCI_INDEX), ("docker", DOCKER_MANIFEST_LIST)]
)
async def test_push_index_stores_a_two_platform_index(
    kind: Kind, media_type: str, registry: RegistryServer, registry_client: httpx.AsyncClient
) -> None:
    digest = await push_index(registry_client, registry.url, "myorg/multi", "v1", kind=kind)

    stored_type, stored = await get_manifest(registry_client, registry.url, "myorg/multi", "v1")
    platforms = [m["platform"]["architecture"] for m in json.loads(stored)["manifests"]]
    assert stored_type == media_type
    assert sha256_digest(stored) == digest
    assert platforms == ["amd64", "arm64"]


async def test_manifest_digest_is_none_for_an_unknown_tag(
    registry: RegistryServer, registry_client: httpx.AsyncClient
) -> None:
    assert await manifest_digest(registry_client, registry.url, "myorg/app", "nope") is None


async def test_delete_manifest_removes_every_tag_pointing_at_it(
    registry: RegistryServer, registry_client: httpx.AsyncClient
) -> None:
    image = make_image()
    await upload_image(registry_client, registry.url, "myorg/app", image, "v1")
    await upload_image(registry_client, registry.url, "myorg/app", image, "latest")

    await delete_manifest(registry_client, registry.url, "myorg/app", image.digest)

    assert await manifest_digest(registry_client, registry.url, "myorg/app", "v1") is None
    assert await list_tags(registry_client, registry.url, "myorg/app") == []


async def test_seed_pushes_every_repo_and_tag_with_indexes_mixed_in(
    registry: RegistryServer, registry_client: httpx.AsyncClient
) -> None:
    repos = [f"myorg/repo{i}" for i in range(4)]

    seeded = await seed(registry_client, registry.url, repos, 5, index_every=5)

    for repo in repos:
        assert await list_tags(registry_client, registry.url, repo) == list(seeded[repo])
        assert list(seeded[repo]) == ["v1", "v2", "v3", "v4", "v5"]
        stored_type, _ = await get_manifest(registry_client, registry.url, repo, "v5")
        assert stored_type == DOCKER_MANIFEST_LIST
        assert (
            await manifest_digest(registry_client, registry.url, repo, "v1") == seeded[repo]["v1"]
        )


async def test_helpers_work_behind_htpasswd(
    auth_registry: RegistryServer, registry_client: httpx.AsyncClient
) -> None:
    robot = RegistryAuth(ROBOT_USER, ROBOT_PASSWORD)

    digest = await push_index(registry_client, auth_registry.url, "myorg/app", "v1", auth=robot)

    assert (
        await manifest_digest(registry_client, auth_registry.url, "myorg/app", "v1", auth=robot)
        == digest
    )
    anonymous = await registry_client.get(f"{auth_registry.url}/v2/myorg/app/tags/list")
    assert anonymous.status_code == 401
    assert robot.token_requests == 0


async def test_seed_works_behind_token_auth(
    token_registry: RegistryServer, registry_client: httpx.AsyncClient
) -> None:
    user = RegistryAuth(TOKEN_USER, TOKEN_PASSWORD)

    seeded = await seed(registry_client, token_registry.url, ["myorg/a", "myorg/b"], 3, auth=user)

    digest = await manifest_digest(registry_client, token_registry.url, "myorg/b", "v3", auth=user)
    assert digest == seeded["myorg/b"]["v3"]


async def test_token_auth_reuses_the_repository_token(
    token_registry: RegistryServer, registry_client: httpx.AsyncClient
) -> None:
    user = RegistryAuth(TOKEN_USER, TOKEN_PASSWORD)
    await push_image(registry_client, token_registry.url, "myorg/app", "v1", auth=user)
    fetched = user.token_requests

    await push_image(registry_client, token_registry.url, "myorg/app", "v2", auth=user)

    assert fetched >= 1
    assert user.token_requests == fetched
