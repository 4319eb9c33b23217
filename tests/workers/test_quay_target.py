"""End to end with Quay as the target (SPEC §4.3, §5.1): a real source registry, the Quay emulator
as ORGMIRROR_TARGET_REGISTRY with ORGMIRROR_TARGET_KIND=quay, real skopeo, in-process workers.

The emulator behaves like Quay where it matters here: the org's robot may push only into
repositories that exist, so every repository must be created through `POST /api/v1/repository`
(with the API token) before its first push, and it keeps the visibility it was created with.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.support import images
from tests.support.fixtures import ROBOT_PASSWORD, ROBOT_USER
from tests.support.quay import QuayEmulator
from tests.support.registry_auth import RegistryAuth
from tests.support.registry_server import RegistryServer
from tests.workers.conftest import ORG, MirrorEnv, open_mirror_env, worker_settings

API_ADMIN = "mirror-admin"
API_TOKEN = "quay-api-token-1"
CREATE = r"/api/v1/repository"


@pytest.fixture
def quay_target(quay: QuayEmulator) -> QuayEmulator:
    """Org `myorg` administered by the API token's user, with the robot orgmirror pushes as
    (a member without create rights, as robots are in Quay)."""
    quay.add_user(ROBOT_USER, ROBOT_PASSWORD)
    quay.add_org(ORG, members={ROBOT_USER}, admins={API_ADMIN})
    quay.add_token(API_ADMIN, API_TOKEN)
    return quay


@pytest.fixture
async def quay_env(
    database_url: str, source: RegistryServer, quay_target: QuayEmulator, tmp_path: Path
) -> AsyncIterator[MirrorEnv]:
    """`mirror_env`, but the target is the Quay emulator reached over plain HTTP."""
    settings = worker_settings(
        database_url,
        tmp_path,
        target_registry=f"http://{quay_target.host}",
        target_kind="quay",
        target_api_token=SecretStr(API_TOKEN),
    )
    async with open_mirror_env(settings, source, quay_target.registry) as env:
        yield env


async def seed(env: MirrorEnv, repos: dict[str, list[str]]) -> dict[str, dict[str, str]]:
    """Push the tags into `src/<repo>` of the source; a tag named `multi` is an OCI index."""
    digests: dict[str, dict[str, str]] = {}
    async with httpx.AsyncClient() as http:
        for repo, tags in repos.items():
            for tag in tags:
                push = images.push_index if tag == "multi" else images.push_image
                digests.setdefault(repo, {})[tag] = await push(
                    http, env.source.url, f"src/{repo}", tag
                )
    return digests


async def run_once(env: MirrorEnv) -> dict[str, Any]:
    response = await env.sync_now()
    assert response.status_code == 204, response.text
    return await env.wait_terminal()


async def quay_repository(quay: QuayEmulator, name: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{quay.url}/api/v1/repository/{ORG}/{name}",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def quay_digest(quay: QuayEmulator, repo: str, tag: str) -> str | None:
    async with httpx.AsyncClient() as http:
        return await images.manifest_digest(
            http, quay.url, f"{ORG}/{repo}", tag, auth=RegistryAuth(ROBOT_USER, ROBOT_PASSWORD)
        )


@pytest.mark.parametrize("visibility", ["public", "private"])
async def test_first_run_creates_each_repository_with_the_config_visibility_then_mirrors_it(
    visibility: str, quay_env: MirrorEnv, quay_target: QuayEmulator
) -> None:
    env, quay = quay_env, quay_target
    digests = await seed(env, {"app": ["v1", "v2"], "tools/cli": ["latest", "multi"]})
    await env.create_config(visibility=visibility)
    await env.start_worker()

    config = await run_once(env)

    assert config["sync_status"] == "SUCCESS", config
    assert config["last_sync"]["tags_copied"] == 4
    assert sorted(quay.repositories) == [f"{ORG}/app", f"{ORG}/tools/cli"]
    assert {r.created_by for r in quay.repositories.values()} == {API_ADMIN}, (
        "created through the API with the API token, not by a push"
    )
    assert quay.count("POST", CREATE, status=201) == 2
    for repo, tags in digests.items():
        shown = await quay_repository(quay, repo)
        assert (shown["is_public"], shown["kind"]) == (visibility == "public", "image")
        for tag, digest in tags.items():
            assert await quay_digest(quay, repo, tag) == digest
    first_create = quay.requests.index(quay.matching("POST", CREATE)[0])
    first_push = quay.requests.index(quay.matching("PUT", r"/v2/.*/manifests/.*")[0])
    assert first_create < first_push


async def test_an_unchanged_second_run_creates_nothing_and_leaves_quay_alone(
    quay_env: MirrorEnv, quay_target: QuayEmulator
) -> None:
    """SPEC §4.3: an unchanged tag costs one request to the source and no write to the target;
    the repositories were created on the first run, so asking Quay again is such a write."""
    env, quay = quay_env, quay_target
    await seed(env, {"app": ["v1", "v2"], "lib": ["1"]})
    await env.create_config()
    await env.start_worker()
    assert (await run_once(env))["sync_status"] == "SUCCESS"
    copies, mark = env.skopeo.processes_started, len(quay.requests)

    second = await run_once(env)

    assert second["sync_status"] == "SUCCESS", second
    assert second["last_sync"]["tags_skipped"] == 3
    assert env.skopeo.processes_started == copies
    later = quay.requests[mark:]
    creates = [(e.method, e.path, e.status) for e in later if e.path == CREATE]
    assert creates == [], "the second run asked Quay to create repositories that exist"
    assert later == [], "an unchanged run must not reach the target at all"


@pytest.mark.parametrize(
    ("token", "status"),
    [("not-a-valid-token", 401), ("viewer", 403), (None, 401)],
    ids=["unknown-token", "token-without-create-rights", "no-token"],
)
async def test_a_refused_api_token_fails_the_repository_naming_the_quay_api(
    token: str | None, status: int, quay_env: MirrorEnv, quay_target: QuayEmulator
) -> None:
    env, quay = quay_env, quay_target
    if token == "viewer":  # a member of the org whose token may not create repositories
        quay.orgs[ORG].members.add("viewer")
        token = quay.add_token("viewer")
    await seed(env, {"app": ["v1"]})
    await env.create_config()
    await env.start_worker(target_api_token=SecretStr(token) if token else None)

    config = await run_once(env)

    assert config["sync_status"] == "FAIL", config
    [repo] = await env.repositories()
    message = repo["status_message"]
    assert repo["sync_status"] == "FAIL"
    assert quay.count("POST", CREATE, status=status) == 1
    assert "Quay" in message, message
    assert "/api/v1/repository" in message, message
    assert str(status) in message, message
    assert "external_registry" not in message, f"hint about the source settings: {message}"
    assert env.skopeo.processes_started == 0, "no skopeo process without the repository"
    assert quay.repositories == {}
