"""RegistryServer runs a real docker-registry, stops it, and counts its requests."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.support.certs import CertificateAuthority, ServerCert
from tests.support.fixtures import ROBOT_PASSWORD, ROBOT_USER, RegistryFactory
from tests.support.images import manifest_digest, push_image
from tests.support.registry_server import RegistryServer, RegistryStartError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def test_registry_answers_v2_on_a_loopback_port(registry: RegistryServer) -> None:
    response = httpx.get(f"{registry.url}/v2/")

    assert response.status_code == 200
    assert registry.host == f"127.0.0.1:{registry.port}"
    assert registry.port != 5000


def test_stop_ends_the_process_and_removes_its_own_workdir() -> None:
    server = RegistryServer().start()
    pid, workdir = server.pid, server.workdir
    assert pid is not None
    assert _alive(pid)

    server.stop()

    assert not _alive(pid)
    assert not workdir.exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/v2/")


def _fail_inside(server: RegistryServer, pids: list[int | None]) -> None:
    with server:
        pids.append(server.pid)
        raise RuntimeError("boom")


def test_context_manager_stops_on_error() -> None:
    pids: list[int | None] = []

    with pytest.raises(RuntimeError, match="boom"):
        _fail_inside(RegistryServer(), pids)

    assert pids[0] is not None
    assert not _alive(pids[0])


def test_start_failure_reports_the_registry_stderr(
    tmp_path: Path, tls_ca: CertificateAuthority
) -> None:
    missing = ServerCert(tmp_path / "missing.crt", tmp_path / "missing.key")
    server = RegistryServer(tmp_path / "reg", tls=missing, ca_file=tls_ca.ca_file)

    with pytest.raises(RegistryStartError, match=r"exited with \d+:(.|\n)*missing\.crt"):
        server.start()

    assert server.pid is None


def test_htpasswd_registry_refuses_anonymous_and_accepts_the_robot(
    auth_registry: RegistryServer,
) -> None:
    anonymous = httpx.get(f"{auth_registry.url}/v2/")
    robot = httpx.get(f"{auth_registry.url}/v2/", auth=(ROBOT_USER, ROBOT_PASSWORD))
    wrong = httpx.get(f"{auth_registry.url}/v2/", auth=(ROBOT_USER, "nope"))

    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Basic ")
    assert robot.status_code == 200
    assert wrong.status_code == 401


async def test_pushed_blobs_land_in_the_storage_dir(
    registry: RegistryServer, registry_client: httpx.AsyncClient
) -> None:
    await push_image(registry_client, registry.url, "myorg/app", "v1")

    repo_dir = registry.storage_dir / "docker/registry/v2/repositories/myorg/app"
    assert (repo_dir / "_manifests/tags/v1").is_dir()


async def test_access_log_counts_each_request_by_method_and_path(
    registry: RegistryServer, registry_client: httpx.AsyncClient
) -> None:
    digest = await push_image(registry_client, registry.url, "myorg/app", "v1")
    before = registry.mark()

    for _ in range(3):
        assert await manifest_digest(registry_client, registry.url, "myorg/app", "v1") == digest

    assert registry.count_requests("HEAD", r"/v2/myorg/app/manifests/.*", since=before) == 3
    assert registry.count_requests(since=before) == 3
    assert registry.writes(since=before) == []
    assert registry.count_requests("PUT", r"/v2/myorg/app/manifests/v1", status=201) == 1


async def test_writes_lists_refused_writes_too(
    auth_registry: RegistryServer, registry_client: httpx.AsyncClient
) -> None:
    before = auth_registry.mark()

    response = await registry_client.post(f"{auth_registry.url}/v2/myorg/app/blobs/uploads/")

    assert response.status_code == 401
    assert [(w.method, w.path, w.status) for w in auth_registry.writes(since=before)] == [
        ("POST", "/v2/myorg/app/blobs/uploads/", 401)
    ]


def test_access_log_can_be_disabled(registry_factory: RegistryFactory) -> None:
    quiet = registry_factory(access_log=False)
    httpx.get(f"{quiet.url}/v2/")

    assert quiet.stdout() == ""
    with pytest.raises(RuntimeError, match="disabled"):
        quiet.count_requests()


def test_two_registries_from_the_factory_are_independent(
    registry_factory: RegistryFactory,
) -> None:
    source, target = registry_factory(), registry_factory()

    assert source.port != target.port
    assert source.storage_dir != target.storage_dir
