"""The TLS registry is reachable with the session CA and refused without it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.certs import CertificateAuthority
from tests.support.images import push_image, sha256_digest
from tests.support.registry_server import RegistryServer
from tests.support.skopeo import skopeo


async def test_tls_registry_answers_clients_trusting_the_ca(
    tls_registry: RegistryServer, registry_client: httpx.AsyncClient
) -> None:
    response = await registry_client.get(f"{tls_registry.url}/v2/")

    assert tls_registry.url.startswith("https://127.0.0.1:")
    assert response.status_code == 200


async def test_tls_registry_is_refused_without_the_ca(tls_registry: RegistryServer) -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(f"{tls_registry.url}/v2/")


def test_ca_dir_holds_only_the_ca(ca_dir: Path, tls_ca: CertificateAuthority) -> None:
    assert [p.name for p in ca_dir.iterdir()] == ["ca.crt"]
    assert (ca_dir / "ca.crt").read_bytes() == tls_ca.ca_file.read_bytes()


async def test_skopeo_trusts_the_registry_only_through_the_cert_dir(
    tls_registry: RegistryServer, registry_client: httpx.AsyncClient, ca_dir: Path
) -> None:
    digest = await push_image(registry_client, tls_registry.url, "myorg/app", "v1")
    ref = f"docker://{tls_registry.host}/myorg/app:v1"

    trusted = await skopeo("inspect", "--raw", "--cert-dir", str(ca_dir), ref)
    untrusted = await skopeo("inspect", "--raw", ref)

    assert sha256_digest(trusted.check().stdout.encode()) == digest
    assert untrusted.returncode == 1
    assert "x509: certificate signed by unknown authority" in untrusted.stderr
