"""Crashes and competition: a SIGKILLed worker process, several workers on one database."""

from __future__ import annotations

import asyncio
import collections
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from app.repositories.runs import RepoClaim
from app.runtime import Runtime
from app.workers.worker import Worker
from tests.conftest import ENCRYPTION_KEY, JWT_SECRET
from tests.support import images
from tests.workers.conftest import MirrorEnv

ORGMIRROR = Path(sys.executable).with_name("orgmirror")


async def seed_many(env: MirrorEnv, repos: int, tags: int) -> None:
    async with httpx.AsyncClient() as http:
        await images.seed(http, env.source.url, [f"src/r{i:02d}" for i in range(repos)], tags)


def worker_process(env: MirrorEnv, tmp_path: Path, **extra: str) -> subprocess.Popen[bytes]:
    """``orgmirror worker`` as its own process on the test's database and registries."""
    settings = env.settings
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "ORGMIRROR_DATABASE_URL": settings.effective_database_url,
        "ORGMIRROR_JWT_SECRET": JWT_SECRET,
        "ORGMIRROR_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "ORGMIRROR_TARGET_REGISTRY": settings.target_registry,
        "ORGMIRROR_SSRF_ALLOWED_HOSTS": "127.0.0.1",
        "ORGMIRROR_LEASE_SECONDS": "5",
        "ORGMIRROR_WORKER_POLL_INTERVAL": "0.5",
        "ORGMIRROR_WORKER_CONCURRENCY": "2",
        **extra,
    }
    with (tmp_path / "worker.log").open("wb") as log:
        return subprocess.Popen(
            [str(ORGMIRROR), "worker"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_with_children(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker and the skopeo processes it started, as a crashed host would."""
    children_file = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    children = [int(pid) for pid in children_file.read_text().split()]
    process.send_signal(signal.SIGKILL)
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=10)


def manifest_puts(env: MirrorEnv) -> collections.Counter[str]:
    puts = collections.Counter[str]()
    for entry in env.target.requests():
        if entry.method == "PUT" and re.fullmatch(r"/v2/myorg/r\d+/manifests/[^/]+", entry.path):
            if not entry.path.split("/")[-1].startswith("sha256:"):
                puts[entry.path] += 1
    return puts


async def test_sigkilled_worker_is_replaced_and_nothing_is_copied_twice(
    mirror_env: MirrorEnv, tmp_path: Path
) -> None:
    env = mirror_env
    await seed_many(env, repos=30, tags=2)
    await env.create_config()
    process = worker_process(env, tmp_path)
    try:
        assert (await env.sync_now()).status_code == 204

        async def some_done() -> bool:
            return (await env.config())["repo_sync_status_counts"]["SUCCESS"] >= 4

        await env.wait_for(some_done, seconds=60)
        kill_with_children(process)
    finally:
        if process.poll() is None:
            process.kill()
    interrupted = await env.config()
    assert interrupted["sync_status"] == "SYNCING"
    assert interrupted["repo_sync_status_counts"]["SUCCESS"] < 30

    await env.start_worker()
    final = await env.wait_terminal(seconds=90)
    assert final["sync_status"] == "SUCCESS", final
    assert final["last_sync"]["repositories_total"] == 30
    assert final["repo_sync_status_counts"]["SUCCESS"] == 30
    puts = manifest_puts(env)
    assert len(puts) == 60, "every tag reached the target"
    assert set(puts.values()) == {1}, f"tags copied twice: {[p for p, n in puts.items() if n > 1]}"


class RecordingWorker(Worker):
    """Records when each repository sync starts and ends, to find overlapping claims."""

    intervals: list[tuple[int, str, float, float]]

    async def _sync(self, claim: RepoClaim) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await super()._sync(claim)
        finally:
            self.intervals.append((claim.repository_id, self.id, started, loop.time()))


async def test_three_workers_share_a_run_without_claiming_a_repository_twice(
    mirror_env: MirrorEnv,
) -> None:
    env = mirror_env
    await seed_many(env, repos=36, tags=1)
    await env.create_config()
    intervals: list[tuple[int, str, float, float]] = []
    workers = []
    for number in range(3):
        runtime = Runtime.build(env.settings)
        worker = RecordingWorker(runtime, worker_id=f"w{number}", skopeo=env.skopeo)
        worker.intervals = intervals
        workers.append((worker, asyncio.create_task(worker.run()), runtime))
    env.workers.extend(workers)
    assert (await env.sync_now()).status_code == 204
    final = await env.wait_terminal(seconds=120)
    assert final["sync_status"] == "SUCCESS", final
    assert final["last_sync"]["repositories_total"] == 36
    by_repo: dict[int, list[tuple[str, float, float]]] = collections.defaultdict(list)
    for repo, worker_id, start, end in intervals:
        by_repo[repo].append((worker_id, start, end))
    assert len(by_repo) == 36
    assert all(len(runs) == 1 for runs in by_repo.values()), "a repository was synced twice"
    assert len({w for runs in by_repo.values() for w, _, _ in runs}) == 3, "all workers helped"
    assert env.skopeo.processes_started == 36
