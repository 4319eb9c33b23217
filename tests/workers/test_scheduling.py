"""Wake-ups, coalesced follow-ups and graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from app.models import AuditEvent, MirrorRepository
from app.runtime import Runtime
from app.statuses import SyncStatus
from app.workers.worker import Worker
from tests.support import images
from tests.support.harbor import HarborEmulator
from tests.workers.conftest import MirrorEnv
from tests.workers.test_cancel import PROJECT, copies_running, harbor_config, hung_harbor
from tests.workers.test_crashes import worker_process


async def seed_small(env: MirrorEnv) -> None:
    async with httpx.AsyncClient() as http:
        await images.push_image(http, env.source.url, "src/app", "v1")


async def test_sync_now_wakes_a_worker_of_another_process_through_listen_notify(
    mirror_env: MirrorEnv,
) -> None:
    env = mirror_env
    await seed_small(env)
    await env.create_config()
    # Its own runtime, so only PostgreSQL NOTIFY can wake it before the 60 s poll.
    runtime = Runtime.build(env.settings.model_copy(update={"worker_poll_interval": 60.0}))
    worker = Worker(runtime, skopeo=env.skopeo)
    task = asyncio.create_task(worker.run())
    env.workers.append((worker, task, runtime))
    await asyncio.sleep(1.0)  # the worker is idle now, parked in its 60 s wait
    started = time.monotonic()
    assert (await env.sync_now()).status_code == 204
    config = await env.wait_terminal(seconds=30)
    assert config["sync_status"] == "SUCCESS"
    assert time.monotonic() - started < 20, "picked up by NOTIFY, not by the 60 s poll"


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
async def test_sync_now_wakes_the_embedded_worker_in_process(mirror_env: MirrorEnv) -> None:
    env = mirror_env
    await seed_small(env)
    await env.create_config()
    await env.start_worker(worker_poll_interval=60.0)
    await asyncio.sleep(1.0)
    started = time.monotonic()
    assert (await env.sync_now()).status_code == 204
    config = await env.wait_terminal(seconds=30)
    assert config["sync_status"] == "SUCCESS"
    assert time.monotonic() - started < 20, "picked up by the in-process wake-up"


async def run_outcomes(env: MirrorEnv) -> int:
    async with env.runtime.sessionmaker() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "mirror.run_finished")
        )
    return int(count or 0)


async def test_coalesced_sync_now_queues_exactly_one_follow_up_run(
    mirror_env: MirrorEnv, harbor: HarborEmulator
) -> None:
    env = mirror_env
    harbor.add_project(PROJECT, public=True)
    async with httpx.AsyncClient(auth=harbor.backdoor()) as http:
        await images.push_image(http, harbor.registry.url, f"{PROJECT}/app", "v1")
    harbor.faults.delay(rf"/v2/{PROJECT}/.*/blobs/.*", 1.0, times=None, method="GET")
    await harbor_config(env, harbor)
    await env.start_worker()
    assert (await env.sync_now()).status_code == 204
    await copies_running(env)
    assert (await env.sync_now()).status_code == 404
    for _ in range(3):
        assert (await env.sync_now(coalesce="true")).status_code == 204

    async def two_runs_done() -> bool:
        config = await env.config()
        return await run_outcomes(env) >= 2 and config["sync_status"] == "SUCCESS"

    await env.wait_for(two_runs_done, seconds=60)
    await asyncio.sleep(2.0)  # a third run, if wrongly queued, would have started by now
    assert await run_outcomes(env) == 2
    assert (await env.config())["sync_status"] == "SUCCESS"


async def test_sigterm_hands_leases_back_so_another_worker_resumes_at_once(
    mirror_env: MirrorEnv, harbor: HarborEmulator, tmp_path: Path
) -> None:
    env = mirror_env
    await hung_harbor(harbor, repos=2)
    await harbor_config(env, harbor)
    process = worker_process(env, tmp_path, ORGMIRROR_LEASE_SECONDS="120")
    try:
        assert (await env.sync_now()).status_code == 204
        await copies_running(env, minimum=2, host=harbor.host)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    log = (tmp_path / "worker.log").read_text()
    assert "handed back 2 repositories" in log, log
    async with env.runtime.sessionmaker() as session:
        rows = (await session.execute(select(MirrorRepository))).scalars().all()
    assert {r.sync_status for r in rows} == {SyncStatus.SYNC_NOW}
    assert all(r.lease_owner is None for r in rows)

    harbor.faults.clear()
    await env.start_worker()
    config = await env.wait_terminal(seconds=30)
    assert config["sync_status"] == "SUCCESS", "resumed without waiting for the 120 s lease"


def test_worker_process_exits_cleanly_when_idle(mirror_env: MirrorEnv, tmp_path: Path) -> None:
    process = worker_process(mirror_env, tmp_path)
    try:
        time.sleep(1.5)
        assert process.poll() is None, (tmp_path / "worker.log").read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert "stopped" in (tmp_path / "worker.log").read_text()
