"""The run lifecycle (SPEC §2): start, discovery, finalization.

Each step is: read and commit → talk to the source → write the result in a new short
transaction. A write is always guarded by the lease, so a cancel, a delete or a takeover
that happened meanwhile wins and the stale result is dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import metrics
from app.db import utcnow
from app.errors import InvalidRequest
from app.registry.client import RegistryClient
from app.registry.errors import RegistryError
from app.registry.sources import Source, list_repositories
from app.repositories import audit as audit_repo
from app.repositories import runs as runs_repo
from app.schemas.common import format_api_datetime
from app.security import SecretBox
from app.services.filters import RepositoryFilter
from app.services.mirror_configs import source_for
from app.services.schedule import next_slot
from app.statuses import SyncStatus

log = logging.getLogger("orgmirror.run")

VANISHED = "No longer in the source namespace (the mirrored images stay in the target)"
DEFAULT_RETRIES = 3


@dataclass(frozen=True)
class RunContext:
    sessionmaker: async_sessionmaker[AsyncSession]
    registry: RegistryClient
    box: SecretBox
    me: str
    lease_seconds: int
    discovery_retry_delay: float
    ca_file: str | None = None

    def lease_until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.lease_seconds)


async def claim_next_config(ctx: RunContext) -> int | None:
    now = utcnow()
    async with ctx.sessionmaker() as session:
        config_id = await runs_repo.claim_config(
            session, me=ctx.me, now=now, lease_until=ctx.lease_until(now)
        )
        await session.commit()
    return config_id


async def _load_source(ctx: RunContext, config_id: int) -> tuple[Source, list[str], str] | None:
    async with ctx.sessionmaker() as session:
        loaded = await runs_repo.get_config_for_run(session, config_id)
        if loaded is None:
            return None
        config, org_name, _robot = loaded
        source = source_for(config, org_name=org_name, box=ctx.box, ca_file=ctx.ca_file)
        return source, list(config.repository_filters), org_name


async def discover(ctx: RunContext, config_id: int) -> None:
    """List the source, upsert tracking rows, queue the repositories to sync."""
    loaded = await _load_source(ctx, config_id)
    if loaded is None:
        return
    source, filters, org_name = loaded
    log.info("run started: org=%s source=%s/%s", org_name, source.endpoint.url, source.namespace)
    try:
        names = await list_repositories(ctx.registry, source)
    except (RegistryError, InvalidRequest) as exc:
        await _discovery_failed(ctx, config_id, org_name, exc.detail)
        return
    await _record_discovery(ctx, config_id, org_name, names, RepositoryFilter(filters))


async def _record_discovery(
    ctx: RunContext, config_id: int, org_name: str, names: list[str], chooser: RepositoryFilter
) -> None:
    now = utcnow()
    async with ctx.sessionmaker() as session:
        tracked = await runs_repo.tracked_repositories(session, config_id)
        known = [n for n, status in tracked.items() if status != SyncStatus.SKIP]
        if not names and known:
            await session.rollback()
            message = (
                f"The source listing returned no repositories while {len(known)} were known; "
                "refusing to mark them all skipped. Check the namespace and credentials."
            )
            await _discovery_failed(ctx, config_id, org_name, message)
            return
        included = chooser.select(names)
        await _upsert(session, config_id, tracked, names, included, chooser, now)
        if not await runs_repo.end_discovery(session, config_id=config_id, me=ctx.me):
            await session.rollback()
            log.info("run of org=%s was cancelled or deleted during discovery", org_name)
            return
        await runs_repo.notify_workers(session)
        await session.commit()
    log.info("discovery done: org=%s listed=%d queued=%d", org_name, len(names), len(included))
    await finalize_if_done(ctx, config_id)


async def _upsert(
    session: AsyncSession,
    config_id: int,
    tracked: dict[str, str],
    names: list[str],
    included: list[str],
    chooser: RepositoryFilter,
    now: datetime,
) -> None:
    queue = sorted(set(included))
    excluded = sorted(set(names) - set(queue))
    vanished = sorted(set(tracked) - set(names))
    await runs_repo.set_repositories(
        session,
        config_id=config_id,
        names=[n for n in queue if n in tracked],
        status=SyncStatus.SYNC_NOW,
        message=None,
    )
    await runs_repo.add_repositories(
        session,
        config_id=config_id,
        names=[n for n in queue if n not in tracked],
        status=SyncStatus.SYNC_NOW,
        message=None,
        now=now,
    )
    for name in excluded:
        reason = chooser.decide(name).reason
        if name in tracked:
            await runs_repo.set_repositories(
                session, config_id=config_id, names=[name], status=SyncStatus.SKIP, message=reason
            )
        else:
            await runs_repo.add_repositories(
                session,
                config_id=config_id,
                names=[name],
                status=SyncStatus.SKIP,
                message=reason,
                now=now,
            )
    await runs_repo.set_repositories(
        session, config_id=config_id, names=vanished, status=SyncStatus.SKIP, message=VANISHED
    )


async def discovery_crashed(ctx: RunContext, config_id: int, exc: BaseException) -> None:
    """Safety net for a bug or an unforeseen answer: fail (or retry) the run with a pointer to
    the log, instead of leaving it SYNCING to be claimed and crash again at every lease expiry."""
    message = (
        f"Internal error during discovery ({exc.__class__.__name__}); the worker log has the "
        "details"
    )
    await _discovery_failed(ctx, config_id, f"config {config_id}", message)


async def _discovery_failed(ctx: RunContext, config_id: int, org_name: str, message: str) -> None:
    now = utcnow()
    async with ctx.sessionmaker() as session:
        loaded = await runs_repo.get_config_for_run(session, config_id)
        if loaded is None:
            return
        config = loaded[0]
        remaining = config.sync_retries_remaining
        values: dict[str, Any]
        if remaining > 0:
            delay = ctx.discovery_retry_delay * 2 ** (DEFAULT_RETRIES - remaining)
            values = {
                "sync_status": SyncStatus.SYNC_NOW,
                "sync_start_date": now + timedelta(seconds=delay),
                "sync_retries_remaining": remaining - 1,
            }
            log.warning("discovery failed: org=%s retry_in=%.0fs: %s", org_name, delay, message)
        else:
            values = _final_values(
                config.schedule_anchor, config.sync_interval, config.follow_up_requested, now
            )
            values["sync_status"] = (
                SyncStatus.SYNC_NOW if config.follow_up_requested else SyncStatus.FAIL
            )
            values["last_sync"] = _summary(
                config.run_started_at or now, now, SyncStatus.FAIL, {}, message
            )
            metrics.RUNS.labels(status=SyncStatus.FAIL.value).inc()
            log.error("run failed: org=%s: %s", org_name, message)
        if await runs_repo.end_run_early(session, config_id=config_id, me=ctx.me, values=values):
            if remaining <= 0:
                await _audit_outcome(session, org_name, SyncStatus.FAIL, message)
            await runs_repo.notify_workers(session)
            await session.commit()


def _final_values(
    anchor: datetime, interval: int, follow_up: bool, now: datetime
) -> dict[str, Any]:
    return {
        "sync_start_date": now
        if follow_up
        else next_slot(anchor=anchor, interval=interval, now=now),
        "follow_up_requested": False,
        "sync_retries_remaining": DEFAULT_RETRIES,
    }


def _summary(
    started: datetime,
    finished: datetime,
    status: str,
    totals: dict[str, int],
    message: str | None = None,
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "started": format_api_datetime(started),
        "finished": format_api_datetime(finished),
        "status": status,
        "repositories_total": 0,
        "repositories_failed": 0,
        "tags_copied": 0,
        "tags_skipped": 0,
        "tags_failed": 0,
        **totals,
    }
    if message:
        summary["message"] = message
    return summary


async def finalize_if_done(ctx: RunContext, config_id: int) -> bool:
    """End the run when no repository is queued or syncing; the first caller wins.

    The guarded transition comes first and the totals are read after it, in the same write
    transaction: read earlier, they could miss a repository that finished meanwhile.
    """
    now = utcnow()
    async with ctx.sessionmaker() as session:
        if not await runs_repo.finalize_run(session, config_id=config_id, values={}):
            await session.rollback()
            return False
        loaded = await runs_repo.get_config_for_run(session, config_id)
        if loaded is None:
            await session.rollback()
            return False
        config, org_name, _ = loaded
        totals = await runs_repo.run_totals(session, config_id)
        status = SyncStatus.FAIL if totals["repositories_failed"] else SyncStatus.SUCCESS
        values = _final_values(
            config.schedule_anchor, config.sync_interval, config.follow_up_requested, now
        )
        values["sync_status"] = SyncStatus.SYNC_NOW if config.follow_up_requested else status
        values["last_sync"] = _summary(config.run_started_at or now, now, status, totals)
        if status == SyncStatus.SUCCESS:
            values["last_success_at"] = now
        await runs_repo.update_config(session, config_id=config_id, values=values)
        await _audit_outcome(session, org_name, status, None, totals)
        await runs_repo.notify_workers(session)
        await session.commit()
    log.info(
        "run finished: org=%s status=%s %s",
        org_name,
        status,
        " ".join(f"{k}={v}" for k, v in totals.items()),
    )
    return True


async def _audit_outcome(
    session: AsyncSession,
    org_name: str,
    status: str,
    message: str | None,
    totals: dict[str, int] | None = None,
) -> None:
    details: dict[str, Any] = {"status": status, **(totals or {})}
    if message:
        details["message"] = message
    await audit_repo.add_event(
        session,
        actor="orgmirror-worker",
        org_name=org_name,
        action="mirror.run_finished",
        details=details,
    )


async def finalize_stragglers(ctx: RunContext) -> None:
    """Safety net: finish runs whose last repository ended without finalizing (e.g. a crash)."""
    async with ctx.sessionmaker() as session:
        ready = await runs_repo.configs_ready_to_finalize(session)
    for config_id in ready:
        await finalize_if_done(ctx, config_id)
