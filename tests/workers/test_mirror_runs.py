"""End to end: real source and target registries, real skopeo, the API and in-process workers."""

from __future__ import annotations

import json
import shutil
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.models import MirroredTag
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


async def stored_digests(env: MirrorEnv) -> list[tuple[int, str, str, object]]:
    async with env.runtime.sessionmaker() as session:
        rows = await session.execute(
            select(MirroredTag.id, MirroredTag.tag, MirroredTag.digest, MirroredTag.mirrored_at)
        )
        return sorted((r[0], r[1], r[2], r[3]) for r in rows.all())


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
    assert copies == 2, "one batched skopeo process per repository with several new tags"
    source_mark, target_mark = env.source.mark(), env.target.mark()
    stored_before = await stored_digests(env)
    second = await run_once(env)
    assert second["sync_status"] == "SUCCESS"
    assert second["last_sync"]["tags_skipped"] == 5
    assert second["last_sync"]["tags_copied"] == 0
    assert env.skopeo.processes_started == copies, "an unchanged tag must not start skopeo"
    assert env.target.requests(since=target_mark) == [], "nothing may reach the target"
    manifest_requests = env.source.count_requests(path=r"/v2/.*/manifests/.*", since=source_mark)
    assert manifest_requests == 5, "one manifest request per tag"
    assert await stored_digests(env) == stored_before, "no tag row rewritten when unchanged"


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
    # 'a' has two tags to copy (one batched process), 'c' one (one skopeo copy).
    assert env.skopeo.processes_started - copies == 2
    for repo, tags in changed.items():
        for tag, digest in tags.items():
            assert await target_digest(env, repo, tag) == digest


async def target_catalog(env: MirrorEnv) -> list[str]:
    async with httpx.AsyncClient(auth=("myorg+robot", "robot-secret-1")) as http:
        return await images.catalog(http, env.target.url)


async def test_filters_decide_what_reaches_the_target_and_vanished_repos_are_skipped(
    mirror_env: MirrorEnv,
) -> None:
    env = mirror_env
    await seed(env, {"app-a": ["1"], "app-b": ["1"], "app-legacy": ["1"], "other": ["1"]})
    await env.create_config(repository_filters=["app-*", "!app-legacy"])
    await env.start_worker()
    first = await run_once(env)
    assert first["sync_status"] == "SUCCESS"
    assert await target_catalog(env) == ["myorg/app-a", "myorg/app-b"]
    repos = {r["name"]: r for r in await env.repositories()}
    assert repos["app-legacy"]["sync_status"] == "SKIP"
    assert "'!app-legacy'" in repos["app-legacy"]["status_message"]
    assert repos["other"]["sync_status"] == "SKIP"
    assert repos["other"]["quay_repository"] is None

    # The repository disappears from the source (as after a delete + garbage collection).
    shutil.rmtree(env.source.storage_dir / "docker/registry/v2/repositories/src/app-b")
    second = await run_once(env)
    assert second["sync_status"] == "SUCCESS"
    repos = {r["name"]: r for r in await env.repositories()}
    assert repos["app-b"]["sync_status"] == "SKIP"
    assert "No longer in the source" in repos["app-b"]["status_message"]
    assert "myorg/app-b" in await target_catalog(env), "nothing is deleted in the target"
    assert second["last_sync"]["repositories_total"] == 1


async def break_tag(env: MirrorEnv, repo: str, tag: str) -> None:
    """Delete one layer blob behind a tag: the manifest stays, copying it cannot work."""
    async with httpx.AsyncClient() as http:
        _, raw = await images.get_manifest(http, env.source.url, f"src/{repo}", tag)
        layer = json.loads(raw)["layers"][0]["digest"]
        response = await http.delete(f"{env.source.url}/v2/src/{repo}/blobs/{layer}")
        assert response.status_code == 202, response.text


async def test_a_failing_tag_fails_repository_and_config_but_the_rest_is_mirrored(
    mirror_env: MirrorEnv,
) -> None:
    env = mirror_env
    digests = await seed(env, {"app": ["good1", "bad", "good2"], "lib": ["1"]})
    await break_tag(env, "app", "bad")
    await env.create_config()
    await env.start_worker()
    config = await run_once(env)
    assert config["sync_status"] == "FAIL"
    assert config["last_sync"]["repositories_failed"] == 1
    assert config["last_sync"]["tags_failed"] == 1
    assert config["last_sync"]["tags_copied"] == 3
    repos = {r["name"]: r for r in await env.repositories()}
    assert repos["app"]["sync_status"] == "FAIL"
    assert repos["app"]["status_message"].startswith("1 of 3 tags failed: bad: "), repos["app"]
    assert repos["lib"]["sync_status"] == "SUCCESS"
    for repo, tag in (("app", "good1"), ("app", "good2"), ("lib", "1")):
        assert await target_digest(env, repo, tag) == digests[repo][tag]
    assert await target_digest(env, "app", "bad") is None
