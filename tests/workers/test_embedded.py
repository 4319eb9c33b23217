"""The embedded default as a CI job uses it: `orgmirror serve` (API + worker in one process),
real HTTP, sync-now, then poll GET — by hand, and with `orgmirror sync-now --wait`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import images
from tests.support.fixtures import ROBOT_PASSWORD, ROBOT_USER
from tests.support.harbor import HarborEmulator
from tests.support.registry_server import RegistryServer
from tests.support.service import OrgmirrorServer, clean_env, run_cli
from tests.workers.test_cancel import PROJECT, hung_harbor


@dataclass
class Embedded:
    server: OrgmirrorServer
    env: dict[str, str]
    cwd: Path
    token: str
    source: RegistryServer
    target: RegistryServer

    def api(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=10)

    def sync_now_cli(self, *args: str) -> tuple[int, str]:
        result = run_cli(
            "sync-now",
            "myorg",
            "--url",
            self.server.url,
            "--interval",
            "0.2",
            *args,
            cwd=self.cwd,
            env={**self.env, "ORGMIRROR_TOKEN": self.token},
            timeout=90,
        )
        return result.returncode, result.stdout + result.stderr


async def push(registry: RegistryServer, repo: str, tag: str) -> str:
    async with httpx.AsyncClient() as http:
        return await images.push_index(http, registry.url, repo, tag)


async def target_digest(target: RegistryServer, repo: str, tag: str) -> str | None:
    async with httpx.AsyncClient(auth=(ROBOT_USER, ROBOT_PASSWORD)) as http:
        return await images.manifest_digest(http, target.url, repo, tag)


@pytest.fixture
def embedded(
    tmp_path: Path, registry: RegistryServer, auth_registry: RegistryServer
) -> Iterator[Embedded]:
    env = clean_env(
        tmp_path,
        ORGMIRROR_SSRF_ALLOWED_HOSTS="127.0.0.1",
        ORGMIRROR_TARGET_REGISTRY=f"http://{auth_registry.host}",
    )
    with OrgmirrorServer(cwd=tmp_path, env=env, log_dir=tmp_path) as server:
        token = run_cli("token", "ci-bot", cwd=tmp_path, env=env).stdout.strip()
        setup = Embedded(server, env, tmp_path, token, registry, auth_registry)
        with setup.api() as api:
            assert api.post("/api/v1/organization/", json={"name": "myorg"}).status_code == 201
            robot = api.put(
                "/api/v1/organization/myorg/robots/robot", json={"token": ROBOT_PASSWORD}
            )
            assert robot.status_code == 201
            config = {
                "external_registry_type": "oci",
                "external_registry_url": registry.url,
                "external_namespace": "team",
                "robot_username": ROBOT_USER,
                "visibility": "private",
                "sync_interval": 86400,
                "sync_start_date": "2030-01-01T00:00:00Z",
            }
            assert api.post("/api/v1/organization/myorg/mirror", json=config).status_code == 201
        yield setup
    assert ROBOT_PASSWORD not in server.stdout + server.stderr


def test_embedded_serve_mirrors_after_sync_now_and_polling(embedded: Embedded) -> None:
    assert "mirror worker in this process: yes" in embedded.server.stdout
    digest = asyncio.run(push(embedded.source, "team/app", "1.0"))
    with embedded.api() as api:
        verify = api.post("/api/v1/organization/myorg/mirror/verify").json()
        assert verify == {
            "success": True,
            "message": "Connection successful: 1 repository visible in 'team'",
        }
        assert api.post("/api/v1/organization/myorg/mirror/sync-now").status_code == 204
        deadline = time.monotonic() + 60
        while True:
            status = api.get("/api/v1/organization/myorg/mirror").json()
            if status["sync_status"] in {"SUCCESS", "FAIL", "CANCEL"}:
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
    assert status["sync_status"] == "SUCCESS", status
    assert status["last_sync"]["tags_copied"] == 1
    assert asyncio.run(target_digest(embedded.target, "myorg/app", "1.0")) == digest


def test_cli_sync_now_wait_exits_zero_on_success(embedded: Embedded) -> None:
    asyncio.run(push(embedded.source, "team/app", "1.0"))
    asyncio.run(push(embedded.source, "team/lib", "2.0"))
    code, output = embedded.sync_now_cli("--wait")
    assert code == 0, output
    assert "sync of 'myorg' requested" in output
    assert output.strip().splitlines()[-1].startswith("SUCCESS: 2 repositories (0 failed)")
    again, output = embedded.sync_now_cli("--wait")
    assert again == 0, output
    assert "tags copied 0, unchanged 2" in output


def test_cli_sync_now_wait_exits_one_on_failure(embedded: Embedded) -> None:
    async def broken() -> None:
        async with httpx.AsyncClient() as http:
            await images.push_image(http, embedded.source.url, "team/app", "bad")
            _, raw = await images.get_manifest(http, embedded.source.url, "team/app", "bad")
            layer = json.loads(raw)["layers"][0]["digest"]
            await http.delete(f"{embedded.source.url}/v2/team/app/blobs/{layer}")

    asyncio.run(broken())
    code, output = embedded.sync_now_cli("--wait")
    assert code == 1, output
    assert "FAIL: 1 repositories (1 failed)" in output


def test_cli_sync_now_explains_a_rejected_token(embedded: Embedded) -> None:
    result = run_cli(
        "sync-now",
        "myorg",
        "--url",
        embedded.server.url,
        "--token",
        "not-a-token",
        cwd=embedded.cwd,
        env=embedded.env,
    )
    assert result.returncode == 4
    assert "answered 401" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    missing = run_cli("sync-now", "myorg", cwd=embedded.cwd, env=embedded.env)
    assert missing.returncode == 4
    assert "ORGMIRROR_TOKEN" in missing.stderr


def test_cli_sync_now_refuses_to_wait_for_a_disabled_config(embedded: Embedded) -> None:
    with embedded.api() as api:
        response = api.put("/api/v1/organization/myorg/mirror", json={"is_enabled": False})
        assert response.status_code == 200
    code, output = embedded.sync_now_cli("--wait", "--timeout", "30")
    assert code == 4, output
    assert "disabled" in output


def test_cli_sync_now_times_out_with_exit_three(embedded: Embedded, harbor: HarborEmulator) -> None:
    asyncio.run(hung_harbor(harbor, repos=1))
    with embedded.api() as api:
        assert api.delete("/api/v1/organization/myorg/mirror").status_code == 204
        config = {
            "external_registry_type": "harbor",
            "external_registry_url": harbor.url,
            "external_namespace": PROJECT,
            "robot_username": ROBOT_USER,
            "visibility": "private",
            "sync_interval": 86400,
            "sync_start_date": "2030-01-01T00:00:00Z",
        }
        assert api.post("/api/v1/organization/myorg/mirror", json=config).status_code == 201
    code, output = embedded.sync_now_cli("--wait", "--timeout", "3")
    assert code == 3, output
    assert "timeout: still SYNCING after 3s" in output
    assert "SYNCING: 0/1 repositories done" in output
    with embedded.api() as api:
        assert api.post("/api/v1/organization/myorg/mirror/sync-cancel").status_code == 204
