"""The embedded default as a CI job uses it: `orgmirror serve` (API + worker in one process),
real HTTP, sync-now, then poll GET until the status is terminal."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.support import images
from tests.support.fixtures import ROBOT_PASSWORD, ROBOT_USER
from tests.support.registry_server import RegistryServer
from tests.support.service import OrgmirrorServer, clean_env, run_cli


async def push(registry: RegistryServer) -> str:
    async with httpx.AsyncClient() as http:
        return await images.push_index(http, registry.url, "team/app", "1.0")


async def target_digest(target: RegistryServer) -> str | None:
    async with httpx.AsyncClient(auth=(ROBOT_USER, ROBOT_PASSWORD)) as http:
        return await images.manifest_digest(http, target.url, "myorg/app", "1.0")


def test_embedded_serve_mirrors_after_sync_now_and_polling(
    tmp_path: Path, registry: RegistryServer, auth_registry: RegistryServer
) -> None:
    digest = asyncio.run(push(registry))
    env = clean_env(
        tmp_path,
        ORGMIRROR_SSRF_ALLOWED_HOSTS="127.0.0.1",
        ORGMIRROR_TARGET_REGISTRY=f"http://{auth_registry.host}",
    )
    with OrgmirrorServer(cwd=tmp_path, env=env, log_dir=tmp_path) as server:
        assert "mirror worker in this process: yes" in server.stdout
        token = run_cli("token", "ci-bot", cwd=tmp_path, env=env).stdout.strip()
        assert token.count(".") == 2
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=10) as api:
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
    assert asyncio.run(target_digest(auth_registry)) == digest
    assert ROBOT_PASSWORD not in server.stdout + server.stderr
