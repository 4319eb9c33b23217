"""Cancel, delete and hung copies reach a working worker within seconds."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import update

from app.models import OrgMirrorConfig
from tests.conftest import auth
from tests.support import images
from tests.support.harbor import HarborEmulator
from tests.workers.conftest import MirrorEnv

PROJECT = "proj"


async def hung_harbor(harbor: HarborEmulator, repos: int) -> None:
    """A public Harbor project whose blob downloads never answer: every copy hangs."""
    harbor.add_project(PROJECT, public=True)
    async with httpx.AsyncClient(auth=harbor.backdoor()) as http:
        for i in range(repos):
            await images.push_image(http, harbor.registry.url, f"{PROJECT}/slow{i}", "v1")
    harbor.faults.hang(rf"/v2/{PROJECT}/.*/blobs/.*", method="GET")


async def harbor_config(env: MirrorEnv, harbor: HarborEmulator, **extra: Any) -> None:
    await env.create_config(
        external_registry_type="harbor",
        external_registry_url=harbor.url,
        external_namespace=PROJECT,
        **extra,
    )


async def copies_running(env: MirrorEnv, minimum: int = 1, *, host: str | None = None) -> None:
    """Wait until ``minimum`` repositories sync and as many skopeo copies run (in this
    process's runner, or, with ``host``, any skopeo process copying from that host)."""

    async def started() -> bool:
        counts = (await env.config())["repo_sync_status_counts"]
        copies = len(skopeo_processes(host)) if host else env.skopeo.processes_started
        return counts["SYNCING"] >= minimum and copies >= minimum

    await env.wait_for(started, seconds=30)


def skopeo_processes(host: str) -> list[int]:
    """PIDs of live skopeo processes copying from ``host`` (from /proc, no ps needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"skopeo") and any(host.encode() in a for a in argv):
            found.append(int(entry.name))
    return found


async def test_cancel_stops_a_running_sync_within_seconds(
    mirror_env: MirrorEnv, harbor: HarborEmulator
) -> None:
    env = mirror_env
    await hung_harbor(harbor, repos=3)
    await harbor_config(env, harbor)
    worker = await env.start_worker()
    assert (await env.sync_now()).status_code == 204
    await copies_running(env, minimum=2)
    assert skopeo_processes(harbor.host)

    started = time.monotonic()
    response = await env.client.post(f"{env.url}/sync-cancel", headers=auth())
    assert response.status_code == 204

    async def stopped() -> bool:
        return not worker._repos and not skopeo_processes(harbor.host)

    await env.wait_for(stopped, seconds=10)
    assert time.monotonic() - started < 5, "cancel must reach the worker within seconds"
    config = await env.config()
    assert config["sync_status"] == "CANCEL"
    assert config["last_sync"]["status"] == "CANCEL"
    counts = config["repo_sync_status_counts"]
    assert counts["SUCCESS"] == 0, "nothing half-written may be reported as SUCCESS"
    assert counts["CANCEL"] == 3
    await asyncio.sleep(1.5)  # a late write from the killed copies would show up now
    assert (await env.config())["repo_sync_status_counts"]["CANCEL"] == 3


async def test_delete_during_a_run_stops_the_worker_work(
    mirror_env: MirrorEnv, harbor: HarborEmulator
) -> None:
    env = mirror_env
    await hung_harbor(harbor, repos=2)
    await harbor_config(env, harbor)
    worker = await env.start_worker()
    assert (await env.sync_now()).status_code == 204
    await copies_running(env)
    assert (await env.client.delete(env.url, headers=auth())).status_code == 204

    async def stopped() -> bool:
        return not worker._repos and not skopeo_processes(harbor.host)

    await env.wait_for(stopped, seconds=5)
    assert (await env.client.get(env.url, headers=auth())).status_code == 404
    await harbor_config(env, harbor)  # the org can be configured again right away


async def test_a_hanging_copy_is_killed_at_skopeo_timeout_and_reported(
    mirror_env: MirrorEnv, harbor: HarborEmulator
) -> None:
    env = mirror_env
    await hung_harbor(harbor, repos=1)
    await harbor_config(env, harbor)
    # The API's minimum is 30 s; the worker honours whatever is stored, so make it short.
    async with env.runtime.sessionmaker() as session:
        await session.execute(update(OrgMirrorConfig).values(skopeo_timeout=2))
        await session.commit()
    await env.start_worker(copy_attempts=1)
    assert (await env.sync_now()).status_code == 204
    started = time.monotonic()
    config = await env.wait_terminal(seconds=30)
    assert time.monotonic() - started < 15
    assert config["sync_status"] == "FAIL"
    repo = (await env.repositories())[0]
    assert repo["sync_status"] == "FAIL"
    message = repo["status_message"]
    assert "v1:" in message
    assert "timed out" in message or "deadline exceeded" in message, message
    assert not skopeo_processes(harbor.host)
