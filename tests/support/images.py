"""Build real images in memory and push them over the registry API — no Docker needed.

Layers are real tar+gzip archives of random bytes (so every image is unique and skopeo can
copy it), configs carry the matching `diff_ids`, manifests are Docker v2 schema 2 or OCI, and
indexes are two-platform OCI indexes or Docker manifest lists. Everything works against plain,
htpasswd and token-auth registries: see `registry_auth.RegistryAuth`.

Every helper takes the caller's `httpx.AsyncClient` (TLS settings live there) and a base URL
such as `RegistryServer.url`.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import httpx

from tests.support.registry_auth import AuthArg, resolve_auth

Kind = Literal["docker", "oci"]

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
# distribution 2.8 answers 404 for OCI content and converts Docker content to schema 1 (another
# digest) unless all four are accepted.
ALL_MANIFEST_TYPES = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST))

_MEDIA_TYPES: dict[Kind, tuple[str, str, str, str]] = {
    "docker": (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST_LIST),
    "oci": (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER, OCI_INDEX),
}
DEFAULT_PLATFORMS = (("linux", "amd64"), ("linux", "arm64"))


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(document: object) -> bytes:
    return json.dumps(document, indent=3).encode()


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    def descriptor(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "size": len(self.data), "digest": self.digest}


@dataclass(frozen=True)
class Image:
    """A single-platform image: what to upload and the exact manifest bytes."""

    media_type: str
    manifest: bytes
    config: Blob
    layers: tuple[Blob, ...]
    platform: tuple[str, str]

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)


@dataclass(frozen=True)
class Index:
    """An OCI index or Docker manifest list over per-platform images."""

    media_type: str
    manifest: bytes
    images: tuple[Image, ...]

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)


def make_layer(size: int) -> tuple[bytes, str]:
    """A gzipped tar holding `size` random bytes; returns (blob, diff_id)."""
    payload = os.urandom(size)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"data/{payload[:8].hex()}.bin")
        info.size = size
        tar.addfile(info, io.BytesIO(payload))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, compresslevel=1, mtime=0), sha256_digest(tar_bytes)


def make_image(
    *,
    kind: Kind = "docker",
    layers: int = 2,
    layer_size: int = 1024,
    platform: tuple[str, str] = ("linux", "amd64"),
) -> Image:
    """A fresh unique image of `layers` random layers for `platform` (os, architecture)."""
    manifest_type, config_type, layer_type, _ = _MEDIA_TYPES[kind]
    built = [make_layer(layer_size) for _ in range(layers)]
    layer_blobs = tuple(Blob(layer_type, data) for data, _ in built)
    config = Blob(config_type, _json(_config_document(platform, [d for _, d in built])))
    manifest = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": config.descriptor(),
        "layers": [blob.descriptor() for blob in layer_blobs],
    }
    return Image(manifest_type, _json(manifest), config, layer_blobs, platform)


def _config_document(platform: tuple[str, str], diff_ids: list[str]) -> dict[str, object]:
    os_name, architecture = platform
    return {
        "architecture": architecture,
        "os": os_name,
        "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "orgmirror test layer"} for _ in diff_ids],
    }


def make_index(
    *,
    kind: Kind = "oci",
    platforms: Sequence[tuple[str, str]] = DEFAULT_PLATFORMS,
    layers: int = 1,
    layer_size: int = 1024,
) -> Index:
    """An OCI index (kind="oci") or Docker manifest list (kind="docker") of one image per
    platform, the children being manifests of the same family."""
    images = tuple(
        make_image(kind=kind, layers=layers, layer_size=layer_size, platform=p) for p in platforms
    )
    index_type = _MEDIA_TYPES[kind][3]
    manifests = [
        {
            "mediaType": image.media_type,
            "size": len(image.manifest),
            "digest": image.digest,
            "platform": {"architecture": image.platform[1], "os": image.platform[0]},
        }
        for image in images
    ]
    document = {"schemaVersion": 2, "mediaType": index_type, "manifests": manifests}
    return Index(index_type, _json(document), images)


# --- registry operations ----------------------------------------------------------------------


def _url(base_url: str, repo: str, tail: str) -> str:
    return f"{base_url.rstrip('/')}/v2/{repo}/{tail}"


async def upload_blob(
    client: httpx.AsyncClient,
    base_url: str,
    repo: str,
    blob: Blob,
    *,
    chunk_size: int | None = None,
    auth: AuthArg = None,
) -> None:
    """`POST …/blobs/uploads/`, then one `PUT <location>&digest=` (monolithic) or PATCHes of
    `chunk_size` bytes followed by an empty `PUT` (chunked)."""
    how = resolve_auth(client, auth)
    response = await client.post(_url(base_url, repo, "blobs/uploads/"), auth=how)
    _expect(response, 202)
    location = response.url.join(response.headers["location"])
    body = blob.data
    if chunk_size:
        for start in range(0, len(blob.data), chunk_size):
            location = await _patch_chunk(client, location, blob.data, start, chunk_size, how)
        body = b""
    response = await client.put(
        location.copy_merge_params({"digest": blob.digest}),
        content=body,
        headers={"Content-Type": "application/octet-stream"},
        auth=how,
    )
    _expect(response, 201)


async def _patch_chunk(
    client: httpx.AsyncClient,
    location: httpx.URL,
    data: bytes,
    start: int,
    chunk_size: int,
    auth: httpx.Auth,
) -> httpx.URL:
    chunk = data[start : start + chunk_size]
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Range": f"{start}-{start + len(chunk) - 1}",
    }
    response = await client.patch(location, content=chunk, headers=headers, auth=auth)
    _expect(response, 202)
    return response.url.join(response.headers["location"])


async def put_manifest(
    client: httpx.AsyncClient,
    base_url: str,
    repo: str,
    reference: str,
    media_type: str,
    body: bytes,
    *,
    auth: AuthArg = None,
) -> str:
    """PUT a manifest under a tag or digest; returns the digest the registry reports."""
    response = await client.put(
        _url(base_url, repo, f"manifests/{reference}"),
        content=body,
        headers={"Content-Type": media_type},
        auth=resolve_auth(client, auth),
    )
    _expect(response, 201)
    digest = response.headers["docker-content-digest"]
    if digest != sha256_digest(body):
        raise AssertionError(f"registry stored {digest}, expected {sha256_digest(body)}")
    return digest


async def upload_image(
    client: httpx.AsyncClient,
    base_url: str,
    repo: str,
    image: Image,
    reference: str | None = None,
    *,
    chunk_size: int | None = None,
    auth: AuthArg = None,
) -> str:
    """Upload the blobs of `image` (concurrently), then its manifest under `reference`
    (a tag; the digest when None). Returns the manifest digest."""
    how = resolve_auth(client, auth)
    await _run_all(
        upload_blob(client, base_url, repo, blob, chunk_size=chunk_size, auth=how)
        for blob in (image.config, *image.layers)
    )
    return await put_manifest(
        client,
        base_url,
        repo,
        reference or image.digest,
        image.media_type,
        image.manifest,
        auth=how,
    )


async def upload_index(
    client: httpx.AsyncClient,
    base_url: str,
    repo: str,
    index: Index,
    reference: str | None = None,
    *,
    auth: AuthArg = None,
) -> str:
    """Upload every child by digest (distribution 2.8 refuses an index whose children are
    missing), then the index under `reference`. Returns the index digest."""
    how = resolve_auth(client, auth)
    for image in index.images:
        await upload_image(client, base_url, repo, image, auth=how)
    return await put_manifest(
        client,
        base_url,
        repo,
        reference or index.digest,
        index.media_type,
        index.manifest,
        auth=how,
    )


async def push_image(
    client: httpx.AsyncClient,
    base_url: str,
    repo: str,
    tag: str,
    *,
    kind: Kind = "docker",
    layers: int = 2,
    layer_size: int = 1024,
    chunk_size: int | None = None,
    auth: AuthArg = None,
) -> str:
    """Push a fresh random single-platform image as `repo:tag`; returns its digest."""
    image = make_image(kind=kind, layers=layers, layer_size=layer_size)
    return await upload_image(client, base_url, repo, image, tag, chunk_size=chunk_size, auth=auth)


async def push_index(
    client: httpx.AsyncClient,
    base_url: str,
    repo: str,
    tag: str,
    *,
    kind: Kind = "oci",
    platforms: Sequence[tuple[str, str]] = DEFAULT_PLATFORMS,
    layers: int = 1,
    layer_size: int = 1024,
    auth: AuthArg = None,
) -> str:
    """Push a fresh multi-platform index as `repo:tag`; returns the index digest."""
    index = make_index(kind=kind, platforms=platforms, layers=layers, layer_size=layer_size)
    return await upload_index(client, base_url, repo, index, tag, auth=auth)


async def seed(
    client: httpx.AsyncClient,
    base_url: str,
    repos: Sequence[str],
    tags: Sequence[str] | int,
    *,
    kind: Kind = "docker",
    index_every: int = 0,
    layers: int = 1,
    layer_size: int = 512,
    concurrency: int = 8,
    auth: AuthArg = None,
) -> dict[str, dict[str, str]]:
    """Push every tag of every repo (tags `v1…vN` when an int); every `index_every`-th tag of a repo
    is a two-platform index. Returns {repo: {tag: digest}}."""
    tag_names = [f"v{i}" for i in range(1, tags + 1)] if isinstance(tags, int) else list(tags)
    how = resolve_auth(client, auth)  # one instance: tokens are cached across pushes
    gate = asyncio.Semaphore(concurrency)
    result: dict[str, dict[str, str]] = {repo: {} for repo in repos}

    async def one(repo: str, position: int, tag: str) -> None:
        async with gate:
            if index_every and position % index_every == 0:
                digest = await push_index(client, base_url, repo, tag, kind=kind, auth=how)
            else:
                digest = await push_image(
                    client,
                    base_url,
                    repo,
                    tag,
                    kind=kind,
                    layers=layers,
                    layer_size=layer_size,
                    auth=how,
                )
        result[repo][tag] = digest

    await _run_all(
        one(repo, position, tag)
        for repo in repos
        for position, tag in enumerate(tag_names, start=1)
    )
    return {repo: dict(sorted(tags_.items())) for repo, tags_ in result.items()}


async def manifest_digest(
    client: httpx.AsyncClient, base_url: str, repo: str, reference: str, *, auth: AuthArg = None
) -> str | None:
    """`HEAD` with all four manifest types accepted; the digest, or None when unknown."""
    response = await client.head(
        _url(base_url, repo, f"manifests/{reference}"),
        headers={"Accept": ALL_MANIFEST_TYPES},
        auth=resolve_auth(client, auth),
    )
    if response.status_code == 404:
        return None
    _expect(response, 200)
    return response.headers["docker-content-digest"]


async def get_manifest(
    client: httpx.AsyncClient, base_url: str, repo: str, reference: str, *, auth: AuthArg = None
) -> tuple[str, bytes]:
    """`GET` a manifest as stored: (media type, exact bytes)."""
    response = await client.get(
        _url(base_url, repo, f"manifests/{reference}"),
        headers={"Accept": ALL_MANIFEST_TYPES},
        auth=resolve_auth(client, auth),
    )
    _expect(response, 200)
    return response.headers["content-type"], response.content


async def delete_manifest(
    client: httpx.AsyncClient, base_url: str, repo: str, digest: str, *, auth: AuthArg = None
) -> None:
    """Delete by digest (distribution refuses tags); every tag pointing at it goes too."""
    response = await client.delete(
        _url(base_url, repo, f"manifests/{digest}"), auth=resolve_auth(client, auth)
    )
    _expect(response, 202)


async def list_tags(
    client: httpx.AsyncClient, base_url: str, repo: str, *, auth: AuthArg = None
) -> list[str]:
    """Sorted tags of `repo` (distribution 2.8 returns them unsorted, or null when empty)."""
    response = await client.get(_url(base_url, repo, "tags/list"), auth=resolve_auth(client, auth))
    if response.status_code == 404:
        return []
    _expect(response, 200)
    return sorted(response.json().get("tags") or [])


async def catalog(client: httpx.AsyncClient, base_url: str, *, auth: AuthArg = None) -> list[str]:
    """Every repository name, following `Link` pages."""
    how = resolve_auth(client, auth)
    url: httpx.URL | None = httpx.URL(f"{base_url.rstrip('/')}/v2/_catalog?n=1000")
    names: list[str] = []
    while url is not None:
        response = await client.get(url, auth=how)
        _expect(response, 200)
        names += response.json().get("repositories") or []
        link = response.links.get("next", {}).get("url")
        url = response.url.join(link) if link else None
    return names


async def _run_all(coroutines: Iterable[Coroutine[object, object, None]]) -> None:
    """Run concurrently; on failure cancel the rest and raise the first error itself, not an
    ExceptionGroup, so callers can `pytest.raises(AssertionError)`."""
    try:
        async with asyncio.TaskGroup() as group:
            for coroutine in coroutines:
                group.create_task(coroutine)
    except ExceptionGroup as failures:
        first: BaseException = failures
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from failures


def _expect(response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise AssertionError(
            f"{response.request.method} {response.request.url} answered "
            f"{response.status_code}, expected {status}: {response.text[:500]}"
        )
