"""Faults during a run end in a correct, explained state with nothing lost."""

from __future__ import annotations

import asyncio
import os
import signal

import asyncpg
import httpx

from tests.conftest import PG_ADMIN_DSN
from tests.support import images
from tests.support.fixtures import ROBOT_PASSWORD, ROBOT_USER
from tests.support.harbor import HarborEmulator
from tests.workers.conftest import MirrorEnv
from tests.workers.test_cancel import PROJECT, harbor_config, skopeo_processes


async def seed_repos(env: MirrorEnv, repos: int, tags: int) -> dict[str, str]:
    async with httpx.AsyncClient() as http:
        seeded = await images.seed(
            http, env.source.url, [f"src/r{i:02d}" for i in range(repos)], tags
        )
    return {f"{repo}:{tag}": d for repo, by_tag in seeded.items() for tag, d in by_tag.items()}


async def assert_all_in_target(env: MirrorEnv, digests: dict[str, str]) -> None:
    async with httpx.AsyncClient(auth=(ROBOT_USER, ROBOT_PASSWORD)) as http:
        for ref, digest in digests.items():
            repo, tag = ref.split(":")
            target_repo = "myorg/" + repo.removeprefix("src/")
            assert await images.manifest_digest(http, env.target.url, target_repo, tag) == digest


async def successes(env: MirrorEnv, at_least: int) -> None:
    async def check() -> bool:
        return (await env.config())["repo_sync_status_counts"]["SUCCESS"] >= at_least

    await env.wait_for(check, seconds=60)


async def test_source_registry_restarted_mid_run(mirror_env: MirrorEnv) -> None:
    env = mirror_env
    digests = await seed_repos(env, repos=16, tags=2)
    await env.create_config()
    await env.start_worker(worker_concurrency=2)
    assert (await env.sync_now()).status_code == 204
    await successes(env, 2)
    await asyncio.to_thread(env.source.restart, 1.0)
    config = await env.wait_terminal(seconds=120)
    assert config["sync_status"] == "SUCCESS", await env.repositories(status="FAIL")
    assert config["last_sync"]["tags_copied"] == 32
    await assert_all_in_target(env, digests)


async def test_database_connections_dropped_mid_run(mirror_env: MirrorEnv) -> None:
    env = mirror_env
    digests = await seed_repos(env, repos=16, tags=2)
    await env.create_config()
    await env.start_worker(worker_concurrency=2)
    assert (await env.sync_now()).status_code == 204
    await successes(env, 2)
    database = env.runtime.engine.url.database
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await admin.close()
    assert killed >= 1
    config = await env.wait_terminal(seconds=120)
    assert config["sync_status"] == "SUCCESS", await env.repositories(status="FAIL")
    assert config["last_sync"]["repositories_total"] == 16
    await assert_all_in_target(env, digests)


async def test_a_killed_skopeo_is_retried(mirror_env: MirrorEnv, harbor: HarborEmulator) -> None:
    env = mirror_env
    harbor.add_project(PROJECT, public=True)
    async with httpx.AsyncClient(auth=harbor.backdoor()) as http:
        digest = await images.push_image(http, harbor.registry.url, f"{PROJECT}/app", "v1")
    harbor.faults.delay(rf"/v2/{PROJECT}/.*/blobs/.*", 2.0, times=1, method="GET")
    await harbor_config(env, harbor)
    await env.start_worker()
    assert (await env.sync_now()).status_code == 204

    async def copying() -> bool:
        return bool(skopeo_processes(harbor.host))

    await env.wait_for(copying, seconds=30)
    for pid in skopeo_processes(harbor.host):
        os.kill(pid, signal.SIGKILL)
    config = await env.wait_terminal(seconds=60)
    assert config["sync_status"] == "SUCCESS", await env.repositories()
    assert env.skopeo.processes_started == 2, "the killed copy was retried once"
    async with httpx.AsyncClient(auth=(ROBOT_USER, ROBOT_PASSWORD)) as http:
        assert await images.manifest_digest(http, env.target.url, "myorg/app", "v1") == digest


async def test_target_answering_500_fails_with_the_reason_then_recovers(
    mirror_env: MirrorEnv, harbor: HarborEmulator
) -> None:
    env = mirror_env
    digests = await seed_repos(env, repos=2, tags=1)
    harbor.add_user(ROBOT_USER, ROBOT_PASSWORD)
    harbor.add_project("myorg", members=[ROBOT_USER])
    harbor.faults.respond(r"/v2/myorg/r00/manifests/.*", 500, method="PUT", times=None)
    await env.create_config()
    await env.start_worker(target_registry=f"http://{harbor.host}", copy_attempts=2)
    config = await run(env)
    assert config["sync_status"] == "FAIL"
    repos = {r["name"]: r for r in await env.repositories()}
    assert repos["r00"]["sync_status"] == "FAIL"
    assert "500" in repos["r00"]["status_message"], repos["r00"]
    assert repos["r01"]["sync_status"] == "SUCCESS"

    harbor.faults.clear()
    config = await run(env)
    assert config["sync_status"] == "SUCCESS"
    assert config["last_sync"]["tags_copied"] == 1, "only the failed tag is copied again"
    async with httpx.AsyncClient(auth=harbor.backdoor()) as http:
        for ref, digest in digests.items():
            repo, tag = ref.split(":")
            name = "myorg/" + repo.removeprefix("src/")
            assert await images.manifest_digest(http, harbor.registry.url, name, tag) == digest


async def run(env: MirrorEnv) -> dict[str, object]:
    assert (await env.sync_now()).status_code == 204
    return await env.wait_terminal(seconds=90)
