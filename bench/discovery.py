"""(e) Discovery of a 10,000-repository namespace: ``/v2/_catalog`` of a real registry
(paged, 1,000 names a page) and the upsert of one tracking row per repository.

The registry is seeded with ``seed_many`` (link files, ≈ 1 s for 10,000 repositories). The
phase is measured by calling ``app.services.runs.discover`` — the function the worker runs —
with a ``RunContext`` on a fresh PostgreSQL database, right after a sync-now through the API
and the worker's own claim. A real worker is not used because it would go on to copy 10,000
repositories; discovery is the only thing measured here. Timed separately: the source listing
alone, the first discovery (10,000 inserts) and a rediscovery (10,000 rows already tracked).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from app.models import OrgMirrorConfig
from app.registry.sources import list_repositories
from app.repositories import runs as runs_repo
from app.services import runs
from app.services.mirror_configs import source_for
from bench.mirror_bench import fast_tmp
from bench.service import MIRROR_URL, Api, api_on, fresh_database
from bench.settings import BenchConfig
from tests.support.emulator_common import seed_many
from tests.support.registry_server import RegistryServer

log = logging.getLogger("bench.discovery")
NAMESPACE = "big"
OTHER_REPOSITORIES = 100  # outside the namespace: the catalog has them, discovery drops them


def run_context(api: Api) -> runs.RunContext:
    runtime = api.runtime
    return runs.RunContext(
        sessionmaker=runtime.sessionmaker,
        registry=runtime.registry,
        box=runtime.box,
        me="bench-discovery",
        lease_seconds=600,
        discovery_retry_delay=30.0,
    )


async def _seed(registry: RegistryServer, count: int) -> float:
    names = [f"{NAMESPACE}/team{i % 50:02d}/app-{i:05d}" for i in range(count)]
    names += [f"other/app-{i:03d}" for i in range(OTHER_REPOSITORIES)]
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=60.0) as client:
        await seed_many(client, registry, names)
    return time.monotonic() - started


async def _list_only(ctx: runs.RunContext, config_id: int) -> tuple[float, int]:
    async with ctx.sessionmaker() as session:
        loaded = await runs_repo.get_config_for_run(session, config_id)
    assert loaded is not None
    config, org_name, _ = loaded
    source = source_for(config, org_name=org_name, box=ctx.box)
    started = time.monotonic()
    names = await list_repositories(ctx.registry, source)
    return time.monotonic() - started, len(names)


async def _discover_once(api: Api, ctx: runs.RunContext) -> tuple[float, int]:
    """sync-now, the worker's claim, then the timed discovery; returns (seconds, total)."""
    await api.sync_now()
    config_id = await runs.claim_next_config(ctx)
    if config_id is None:
        raise RuntimeError("the config was not due after sync-now")
    started = time.monotonic()
    await runs.discover(ctx, config_id)
    seconds = time.monotonic() - started
    listing = await api.call("GET", f"{MIRROR_URL}/repositories", params={"limit": 1})
    return seconds, int(listing.json()["total"])


async def run_discovery_benchmark(cfg: BenchConfig) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-discovery-", dir=fast_tmp()))
    registry = RegistryServer(workdir).start()
    try:
        seed_seconds = await _seed(registry, cfg.discovery_repos)
        async with fresh_database("discovery") as database, api_on(database) as api:
            await api.create_org_and_robot()
            await api.create_config(registry.url, namespace=NAMESPACE)
            ctx = run_context(api)
            first, first_total = await _discover_once(api, ctx)
            config_id = await _config_id(api)
            list_seconds, listed = await _list_only(ctx, config_id)
            await api.cancel()  # ends the run (queued rows become CANCEL) so it can start again
            again, again_total = await _discover_once(api, ctx)
    finally:
        registry.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "repositories": cfg.discovery_repos,
        "catalog_entries": cfg.discovery_repos + OTHER_REPOSITORIES,
        "seed_seconds": round(seed_seconds, 2),
        "list_only_seconds": round(list_seconds, 3),
        "listed": listed,
        "first_discovery_seconds": round(first, 3),
        "first_discovery_tracked": first_total,
        "rediscovery_seconds": round(again, 3),
        "rediscovery_tracked": again_total,
        "method": "app.services.runs.discover() in-process after sync-now and claim",
    }
    log.info(
        "discovery of %d: list %.2fs, first %.2fs, again %.2fs",
        cfg.discovery_repos,
        list_seconds,
        first,
        again,
    )
    return result


async def _config_id(api: Api) -> int:
    async with api.runtime.sessionmaker() as session:
        return int((await session.execute(select(OrgMirrorConfig.id))).scalar_one())
