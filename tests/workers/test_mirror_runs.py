"""End to end: real source and target registries, real skopeo, the API and in-process workers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import images
from tests.workers.conftest import ORG, MirrorEnv


async def seed(
    env: MirrorEnv, repos: dict[str, list[str]], *, index_tags: set[str] = frozenset()
) -> dict[str, dict[str, str]]:
    digests: dict[str, dict[str, str]] = {}
    async with httpx.AsyncClient() as http:
        for repo, tags in repos.items():
            for tag in tags:
                if tag in index_tags:
                    digest = await images.push_index(http, env.source.url, f"src/{repo}", tag)
                else:
                    digest = await images.push_image(http, env.source.url, f"src/{repo}", tag)
                digests.setdefault(repo, {})[tag] = digest
    return digests


async def target_digest(env: MirrorEnv, repo: str, tag: str) -> str | None:
    async with httpx.AsyncClient(auth=("myorg+robot", "robot-secret-1")) as http:
        return await images.manifest_digest(http, env.target.url, f"{ORG}/{repo}", tag)


@pytest.mark.parametrize("db", ["postgresql", "sqlite"], indirect=True)
async def test_first_run_mirrors_every_repository_and_tag(mirror_env: MirrorEnv) -> None:
    env = mirror_env
    digests = await seed(
        env, {"app": ["v1", "v2"], "tools/cli": ["latest", "multi"]}, index_tags={"multi"}
    )
    await env.create_config()
    await env.start_worker()
    assert (await env.sync_now()).status_code == 204
    config = await env.wait_terminal()
    assert config["sync_status"] == "SUCCESS", config
    last = config["last_sync"]
    assert last["repositories_total"] == 2
    assert last["tags_copied"] == 4
    assert last["tags_failed"] == 0
    for repo, tags in digests.items():
        for tag, digest in tags.items():
            assert await target_digest(env, repo, tag) == digest
    repos = {r["name"]: r for r in await env.repositories()}
    assert repos["app"]["sync_status"] == "SUCCESS"
    assert repos["tools/cli"]["quay_repository"] == f"{ORG}/tools/cli"
    assert repos["app"]["tags_copied"] == 2


async def run_once(env: MirrorEnv) -> dict[str, Any]:
    response = await env.sync_now()
    assert response.status_code == 204, response.text
    return await env.wait_terminal()


async def test_unchanged_resync_runs_no_skopeo_and_touches_nothing_in_the_target(
    mirror_env: MirrorEnv,
) -> None:
    env = mirror_env
    await seed(env, {"a": ["1", "2", "3"], "b": ["x", "multi"]}, index_tags={"multi"})
    await env.create_config()
    await env.start_worker()
    first = await run_once(env)
    assert first["sync_status"] == "SUCCESS"
    copies = env.skopeo.processes_started
    assert copies == 5
    source_mark, target_mark = env.source.mark(), env.target.mark()
    second = await run_once(env)
    assert second["sync_status"] == "SUCCESS"
    assert second["last_sync"]["tags_skipped"] == 5
    assert second["last_sync"]["tags_copied"] == 0
    assert env.skopeo.processes_started == copies, "an unchanged tag must not start skopeo"
    assert env.target.requests(since=target_mark) == [], "nothing may reach the target"
    manifest_requests = env.source.count_requests(path=r"/v2/.*/manifests/.*", since=source_mark)
    assert manifest_requests == 5, "one manifest request per tag"


async def test_changed_and_new_tags_and_repositories_are_copied_exactly(
    mirror_env: MirrorEnv,
) -> None:
    env = mirror_env
    await seed(env, {"a": ["1", "2"], "b": ["x"]})
    await env.create_config()
    await env.start_worker()
    await run_once(env)
    copies = env.skopeo.processes_started
    changed = await seed(env, {"a": ["2", "3"], "c": ["new"]})
    result = await run_once(env)
    assert result["sync_status"] == "SUCCESS"
    assert result["last_sync"]["tags_copied"] == 3
    assert result["last_sync"]["tags_skipped"] == 2
    assert env.skopeo.processes_started - copies == 3
    for repo, tags in changed.items():
        for tag, digest in tags.items():
            assert await target_digest(env, repo, tag) == digest
