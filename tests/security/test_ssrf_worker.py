"""SSRF at run time: the rules are applied again before discovery and before every repository
sync, redirects to other hosts are never followed, and a token realm is held to the same rules.

Sources are real registries (or the Harbor emulator in front of one, for forced answers);
"nothing reached it" is read from the other server's own access log.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.conftest import auth
from tests.security.conftest import GENERIC, FakeDns
from tests.support import images
from tests.support.harbor import HarborEmulator
from tests.support.registry_server import RegistryServer
from tests.workers.conftest import MirrorEnv

PROJECT = "proj"
LISTING = rf"/api/v2\.0/projects/{PROJECT}/repositories"


async def seed_source(env: MirrorEnv) -> None:
    async with httpx.AsyncClient() as http:
        await images.push_image(http, env.source.url, "src/app", "v1")


async def public_harbor(harbor: HarborEmulator) -> None:
    harbor.add_project(PROJECT, public=True)
    async with httpx.AsyncClient(auth=harbor.backdoor()) as http:
        await images.push_image(http, harbor.registry.url, f"{PROJECT}/app", "v1")


async def harbor_config(env: MirrorEnv, url: str, **extra: Any) -> None:
    await env.create_config(
        external_registry_type="harbor",
        external_registry_url=url,
        external_namespace=PROJECT,
        **extra,
    )


async def run(env: MirrorEnv) -> dict[str, Any]:
    assert (await env.sync_now()).status_code == 204
    return await env.wait_terminal(seconds=30)


async def test_discovery_refuses_a_host_the_operator_no_longer_allows(
    mirror_env: MirrorEnv,
) -> None:
    env = mirror_env
    await seed_source(env)
    await env.create_config()  # saved while 127.0.0.1 was allowed
    before = env.source.mark()
    await env.start_worker(ssrf_allowed_hosts=[])

    config = await run(env)

    assert config["sync_status"] == "FAIL"
    assert config["last_sync"]["message"] == GENERIC
    assert env.source.requests(since=before) == [], "nothing may reach a refused source"
    assert env.skopeo.processes_started == 0
    assert env.target.writes() == []
    assert await env.repositories() == []


async def test_repository_sync_refuses_a_name_rebound_after_discovery(
    mirror_env: MirrorEnv, harbor: HarborEmulator, fake_dns: FakeDns
) -> None:
    """DNS rebinding inside one run: loopback (allowed) while the source is listed, a private
    address when its repositories are synced. The pooled connection from discovery would
    still reach the old address, so only the check before the sync can stop it."""
    env = mirror_env
    await public_harbor(harbor)
    fake_dns.answer("rebind.test", "127.0.0.1")
    port = harbor.host.rsplit(":", 1)[1]
    await harbor_config(env, f"http://rebind.test:{port}")
    harbor.faults.delay(LISTING, 2.0)  # keeps discovery in flight while the name rebinds
    asked = len(fake_dns.lookups)
    await env.start_worker()
    assert (await env.sync_now()).status_code == 204

    async def discovery_checked_the_name() -> bool:
        return len(fake_dns.lookups) > asked

    await env.wait_for(discovery_checked_the_name, seconds=10)
    await asyncio.sleep(0.5)  # discovery has connected; its answer is still 1.5 s away
    fake_dns.answer("rebind.test", "10.0.0.7")
    config = await env.wait_terminal(seconds=30)

    assert harbor.count("GET", LISTING) == 1, "discovery ran under the old answer"
    assert config["sync_status"] == "FAIL"
    [repo] = await env.repositories()
    assert (repo["name"], repo["sync_status"]) == ("app", "FAIL")
    assert repo["status_message"] == GENERIC
    assert harbor.count(path=r"/v2/.*") == 0, "no tag list, manifest or blob was requested"
    assert env.skopeo.processes_started == 0
    assert env.target.writes() == []


# Where a source's 307 points: {other} is the port of a registry that must hear nothing.
REDIRECTS = {
    "same address, other port": "http://127.0.0.1:{other}/v2/_catalog",
    "localhost, other port": "http://localhost:{other}/v2/_catalog",
    "ipv4-mapped, other port": "http://[::ffff:127.0.0.1]:{other}/v2/_catalog",
    "scheme-relative": "//127.0.0.1:{other}/v2/_catalog",
    "userinfo naming the source": "http://{source}@127.0.0.1:{other}/v2/_catalog",
    "unspecified address": "http://0.0.0.0:{other}/v2/_catalog",
    "https on the source's port": "https://{source}/v2/_catalog",
}


@pytest.mark.parametrize("template", REDIRECTS.values(), ids=REDIRECTS.keys())
async def test_verify_does_not_follow_a_redirect_to_another_host(
    mirror_env: MirrorEnv, harbor: HarborEmulator, registry: RegistryServer, template: str
) -> None:
    env = mirror_env
    await public_harbor(harbor)
    await harbor_config(env, harbor.url)
    location = template.format(other=registry.port, source=harbor.host)
    harbor.faults.respond(LISTING, 307, headers={"Location": location}, times=None)
    before = registry.mark()

    response = await env.client.post(f"{env.url}/verify", headers=auth())

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["success"] is False
    assert "redirect" in result["message"], result["message"]
    assert registry.requests(since=before) == []


async def test_discovery_does_not_follow_a_redirect_to_another_host(
    mirror_env: MirrorEnv, harbor: HarborEmulator, registry: RegistryServer
) -> None:
    env = mirror_env
    await public_harbor(harbor)
    await harbor_config(env, harbor.url)
    location = f"{registry.url}/api/v2.0/projects/{PROJECT}/repositories"
    harbor.faults.respond(LISTING, 307, headers={"Location": location}, times=None)
    before = registry.mark()
    await env.start_worker()

    config = await run(env)

    assert config["sync_status"] == "FAIL"
    assert "redirect" in config["last_sync"]["message"]
    assert registry.requests(since=before) == []
    assert env.skopeo.processes_started == 0


async def test_repository_sync_does_not_follow_a_redirect_to_another_host(
    mirror_env: MirrorEnv, harbor: HarborEmulator, registry: RegistryServer
) -> None:
    env = mirror_env
    await public_harbor(harbor)
    await harbor_config(env, harbor.url)
    location = f"http://localhost:{registry.port}/v2/{PROJECT}/app/tags/list"
    harbor.faults.respond(
        rf"/v2/{PROJECT}/app/tags/list", 307, headers={"Location": location}, times=None
    )
    before = registry.mark()
    await env.start_worker()

    config = await run(env)

    assert config["sync_status"] == "FAIL"
    [repo] = await env.repositories()
    assert "redirect" in repo["status_message"], repo["status_message"]
    assert registry.requests(since=before) == []
    assert env.skopeo.processes_started == 0


async def test_a_token_realm_on_a_blocked_address_is_refused(
    mirror_env: MirrorEnv, harbor: HarborEmulator, registry: RegistryServer
) -> None:
    """The source chooses the realm: pointing it at 0.0.0.0 (this machine) must not work."""
    env = mirror_env
    await public_harbor(harbor)
    await harbor_config(env, harbor.url)
    challenge = (
        f'Bearer realm="http://0.0.0.0:{registry.port}/token",service="x",'
        f'scope="repository:{PROJECT}/app:pull"'
    )
    harbor.faults.respond(
        rf"/v2/{PROJECT}/app/tags/list",
        401,
        headers={"WWW-Authenticate": challenge},
        times=None,
    )
    before = registry.mark()
    await env.start_worker()

    config = await run(env)

    assert config["sync_status"] == "FAIL"
    [repo] = await env.repositories()
    assert repo["status_message"] == GENERIC
    assert registry.requests(since=before) == []
    assert env.skopeo.processes_started == 0


MALFORMED_REALM = 'Bearer realm="http://[::1",service="x"'


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (307, {"Location": "http://[::1"}),
        (401, {"WWW-Authenticate": MALFORMED_REALM}),
    ],
    ids=["malformed-redirect", "malformed-token-realm"],
)
async def test_verify_survives_a_malformed_answer(
    mirror_env: MirrorEnv, harbor: HarborEmulator, status: int, headers: dict[str, str]
) -> None:
    env = mirror_env
    await public_harbor(harbor)
    await env.create_config(external_registry_url=harbor.url, external_namespace=PROJECT)
    harbor.faults.respond(r"/v2/_catalog", status, headers=headers, times=None)

    response = await env.client.post(f"{env.url}/verify", headers=auth())

    assert response.status_code == 200, response.text
    assert response.json()["success"] is False


async def test_a_malformed_token_realm_fails_the_run(
    mirror_env: MirrorEnv, harbor: HarborEmulator
) -> None:
    env = mirror_env
    await public_harbor(harbor)
    await env.create_config(external_registry_url=harbor.url, external_namespace=PROJECT)
    challenge = {"WWW-Authenticate": MALFORMED_REALM}
    harbor.faults.respond(r"/v2/_catalog", 401, headers=challenge, times=None)
    await env.start_worker()
    assert (await env.sync_now()).status_code == 204

    config = await env.wait_terminal(seconds=8)

    assert config["sync_status"] == "FAIL"
