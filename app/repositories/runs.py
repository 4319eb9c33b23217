"""SQL of the run lifecycle: claims, leases, guarded finishes. Session in; never commits.

Every claim is one statement: ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)
RETURNING`` on PostgreSQL; on SQLite, where writers are serialised, the same conditional
``UPDATE`` is atomic by itself. Every finish is guarded by ``lease_owner = :me`` and reports
whether it still owned the row, so a cancelled, deleted or taken-over claim is never written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, case, delete, exists, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import MirroredTag, MirrorRepository, Organization, OrgMirrorConfig, RobotAccount
from app.statuses import SyncStatus

DISCOVERY = "discovery"
SYNC = "sync"
PENDING = (SyncStatus.SYNC_NOW, SyncStatus.SYNCING)
STARTABLE = (
    SyncStatus.NEVER_RUN,
    SyncStatus.SYNC_NOW,
    SyncStatus.SUCCESS,
    SyncStatus.FAIL,
    SyncStatus.CANCEL,
)
CHUNK = 500
WAKEUP_CHANNEL = "orgmirror_wakeup"


@dataclass(frozen=True)
class RepoClaim:
    repository_id: int
    config_id: int
    name: str


def _is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _skip_locked(session: AsyncSession, query: Select[Any], *of: Any) -> Select[Any]:
    if _is_postgres(session):
        return query.with_for_update(skip_locked=True, of=of or None)
    return query


async def claim_config(
    session: AsyncSession, *, me: str, now: datetime, lease_until: datetime
) -> int | None:
    """Start the run of one due config, or take over a discovery whose lease expired."""
    cfg = OrgMirrorConfig
    due = (
        select(cfg.id)
        .where(
            cfg.is_enabled.is_(True),
            or_(
                and_(cfg.sync_status.in_(STARTABLE), cfg.sync_start_date <= now),
                and_(
                    cfg.sync_status == SyncStatus.SYNCING,
                    cfg.run_phase == DISCOVERY,
                    cfg.sync_expiration_date < now,
                ),
            ),
        )
        .order_by(cfg.sync_start_date)
        .limit(1)
    )
    resuming = cfg.sync_status == SyncStatus.SYNCING
    statement = (
        update(cfg)
        .where(cfg.id.in_(_skip_locked(session, due).scalar_subquery()))
        .values(
            sync_status=SyncStatus.SYNCING,
            run_phase=DISCOVERY,
            lease_owner=me,
            sync_expiration_date=lease_until,
            run_started_at=case((resuming, cfg.run_started_at), else_=now),
            run_count=case((resuming, cfg.run_count), else_=cfg.run_count + 1),
        )
        .returning(cfg.id)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def renew_config(
    session: AsyncSession, *, config_id: int, me: str, lease_until: datetime
) -> bool:
    """Extend a discovery lease; False when the run was cancelled, deleted or taken over."""
    cfg = OrgMirrorConfig
    result = await session.execute(
        update(cfg)
        .where(cfg.id == config_id, cfg.lease_owner == me, cfg.sync_status == SyncStatus.SYNCING)
        .values(sync_expiration_date=lease_until)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def end_discovery(session: AsyncSession, *, config_id: int, me: str) -> bool:
    """Hand the run over to the repository phase (any worker may now claim its repositories)."""
    cfg = OrgMirrorConfig
    result = await session.execute(
        update(cfg)
        .where(cfg.id == config_id, cfg.lease_owner == me, cfg.sync_status == SyncStatus.SYNCING)
        .values(run_phase=SYNC, lease_owner=None)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def get_config_for_run(
    session: AsyncSession, config_id: int
) -> tuple[OrgMirrorConfig, str, RobotAccount] | None:
    """The config, its organization's name and its robot, in one query."""
    row = (
        await session.execute(
            select(OrgMirrorConfig, Organization.name, RobotAccount)
            .join(Organization, Organization.id == OrgMirrorConfig.org_id)
            .join(RobotAccount, RobotAccount.id == OrgMirrorConfig.robot_id)
            .where(OrgMirrorConfig.id == config_id)
        )
    ).first()
    if row is None:
        return None
    return row[0], row[1], row[2]


async def tracked_repositories(session: AsyncSession, config_id: int) -> dict[str, str]:
    """name → status of every repository the config tracks."""
    rows = await session.execute(
        select(MirrorRepository.name, MirrorRepository.sync_status).where(
            MirrorRepository.config_id == config_id
        )
    )
    return {str(name): str(status) for name, status in rows.all()}


def _chunks(names: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(names), CHUNK):
        yield names[start : start + CHUNK]


async def set_repositories(
    session: AsyncSession,
    *,
    config_id: int,
    names: Sequence[str],
    status: str,
    message: str | None,
) -> None:
    repo = MirrorRepository
    for chunk in _chunks(names):
        await session.execute(
            update(repo)
            .where(repo.config_id == config_id, repo.name.in_(chunk))
            .values(
                sync_status=status, status_message=message, lease_owner=None, lease_expires_at=None
            )
            .execution_options(synchronize_session=False)
        )


async def add_repositories(
    session: AsyncSession,
    *,
    config_id: int,
    names: Sequence[str],
    status: str,
    message: str | None,
    now: datetime,
) -> None:
    for chunk in _chunks(names):
        await session.execute(
            insert(MirrorRepository),
            [
                {
                    "config_id": config_id,
                    "name": name,
                    "sync_status": status,
                    "status_message": message,
                    "discovery_date": now,
                }
                for name in chunk
            ],
        )


async def claim_repositories(
    session: AsyncSession, *, me: str, now: datetime, lease_until: datetime, limit: int
) -> list[RepoClaim]:
    """Claim queued repositories of running configs (and ones whose lease expired)."""
    repo, cfg = MirrorRepository, OrgMirrorConfig
    queued = (
        select(repo.id)
        .join(cfg, cfg.id == repo.config_id)
        .where(
            cfg.sync_status == SyncStatus.SYNCING,
            cfg.run_phase == SYNC,
            or_(
                repo.sync_status == SyncStatus.SYNC_NOW,
                and_(repo.sync_status == SyncStatus.SYNCING, repo.lease_expires_at < now),
            ),
        )
        .order_by(repo.config_id, repo.id)
        .limit(limit)
    )
    statement = (
        update(repo)
        .where(repo.id.in_(_skip_locked(session, queued, repo).scalar_subquery()))
        .values(sync_status=SyncStatus.SYNCING, lease_owner=me, lease_expires_at=lease_until)
        .returning(repo.id, repo.config_id, repo.name)
        .execution_options(synchronize_session=False)
    )
    rows = (await session.execute(statement)).all()
    return [RepoClaim(int(r[0]), int(r[1]), str(r[2])) for r in rows]


async def renew_repositories(
    session: AsyncSession, *, ids: Sequence[int], me: str, lease_until: datetime
) -> set[int]:
    """Extend our leases; the ids that come back are the ones still ours to work on."""
    if not ids:
        return set()
    repo = MirrorRepository
    result = await session.execute(
        update(repo)
        .where(
            repo.id.in_(list(ids)), repo.lease_owner == me, repo.sync_status == SyncStatus.SYNCING
        )
        .values(lease_expires_at=lease_until)
        .returning(repo.id, repo.config_id)
        .execution_options(synchronize_session=False)
    )
    rows = result.all()
    configs = {int(r[1]) for r in rows}
    if configs:
        await session.execute(
            update(OrgMirrorConfig)
            .where(
                OrgMirrorConfig.id.in_(configs), OrgMirrorConfig.sync_status == SyncStatus.SYNCING
            )
            .values(sync_expiration_date=lease_until)
            .execution_options(synchronize_session=False)
        )
    return {int(r[0]) for r in rows}


async def finish_repository(
    session: AsyncSession, *, repository_id: int, me: str, values: dict[str, Any]
) -> bool:
    """Record a repository's outcome if we still hold its lease."""
    repo = MirrorRepository
    result = await session.execute(
        update(repo)
        .where(
            repo.id == repository_id, repo.lease_owner == me, repo.sync_status == SyncStatus.SYNCING
        )
        .values(lease_owner=None, lease_expires_at=None, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def release_repositories(session: AsyncSession, *, ids: Sequence[int], me: str) -> None:
    """Give claimed repositories back to the queue (graceful shutdown)."""
    if not ids:
        return
    repo = MirrorRepository
    await session.execute(
        update(repo)
        .where(
            repo.id.in_(list(ids)), repo.lease_owner == me, repo.sync_status == SyncStatus.SYNCING
        )
        .values(sync_status=SyncStatus.SYNC_NOW, lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )


async def release_config(session: AsyncSession, *, config_id: int, me: str, now: datetime) -> None:
    """Let another worker take over a discovery right away (graceful shutdown)."""
    cfg = OrgMirrorConfig
    await session.execute(
        update(cfg)
        .where(cfg.id == config_id, cfg.lease_owner == me)
        .values(lease_owner=None, sync_expiration_date=now)
        .execution_options(synchronize_session=False)
    )


async def tag_digests(session: AsyncSession, repository_id: int) -> dict[str, str]:
    rows = await session.execute(
        select(MirroredTag.tag, MirroredTag.digest).where(
            MirroredTag.repository_id == repository_id
        )
    )
    return {str(tag): str(digest) for tag, digest in rows.all()}


async def save_tag_digests(
    session: AsyncSession,
    *,
    repository_id: int,
    digests: dict[str, str],
    keep: Iterable[str],
    now: datetime,
) -> None:
    """Store the digests mirrored now; forget tags that are no longer in the source."""
    await session.execute(
        delete(MirroredTag).where(
            MirroredTag.repository_id == repository_id,
            or_(MirroredTag.tag.in_(list(digests)), MirroredTag.tag.not_in(list(keep))),
        )
    )
    if digests:
        await session.execute(
            insert(MirroredTag),
            [
                {"repository_id": repository_id, "tag": tag, "digest": digest, "mirrored_at": now}
                for tag, digest in digests.items()
            ],
        )


async def run_totals(session: AsyncSession, config_id: int) -> dict[str, int]:
    """Counters over the repositories of the current run (everything not skipped)."""
    repo = MirrorRepository
    row = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((repo.sync_status == SyncStatus.FAIL, 1), else_=0)), 0),
                func.coalesce(func.sum(repo.tags_copied), 0),
                func.coalesce(func.sum(repo.tags_skipped), 0),
                func.coalesce(func.sum(repo.tags_failed), 0),
            ).where(repo.config_id == config_id, repo.sync_status != SyncStatus.SKIP)
        )
    ).one()
    keys = (
        "repositories_total",
        "repositories_failed",
        "tags_copied",
        "tags_skipped",
        "tags_failed",
    )
    return {key: int(value) for key, value in zip(keys, row, strict=True)}


async def finalize_run(session: AsyncSession, *, config_id: int, values: dict[str, Any]) -> bool:
    """Leave the sync phase once every repository is done; exactly one caller wins. The
    caller completes the row in the same transaction (``update_config``)."""
    cfg, repo = OrgMirrorConfig, MirrorRepository
    pending = exists().where(repo.config_id == config_id, repo.sync_status.in_(PENDING))
    result = await session.execute(
        update(cfg)
        .where(
            cfg.id == config_id,
            cfg.sync_status == SyncStatus.SYNCING,
            cfg.run_phase == SYNC,
            ~pending,
        )
        .values(run_phase=None, lease_owner=None, sync_expiration_date=None, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def update_config(session: AsyncSession, *, config_id: int, values: dict[str, Any]) -> None:
    await session.execute(
        update(OrgMirrorConfig)
        .where(OrgMirrorConfig.id == config_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def configs_ready_to_finalize(session: AsyncSession) -> list[int]:
    cfg, repo = OrgMirrorConfig, MirrorRepository
    pending = exists().where(repo.config_id == cfg.id, repo.sync_status.in_(PENDING))
    rows = await session.execute(
        select(cfg.id).where(cfg.sync_status == SyncStatus.SYNCING, cfg.run_phase == SYNC, ~pending)
    )
    return [int(r) for r in rows.scalars().all()]


async def end_run_early(
    session: AsyncSession, *, config_id: int, me: str, values: dict[str, Any]
) -> bool:
    """Finish a run from the discovery phase (a failed or empty discovery)."""
    cfg = OrgMirrorConfig
    result = await session.execute(
        update(cfg)
        .where(cfg.id == config_id, cfg.lease_owner == me, cfg.sync_status == SyncStatus.SYNCING)
        .values(run_phase=None, lease_owner=None, sync_expiration_date=None, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def notify_workers(session: AsyncSession) -> None:
    """Wake workers when this transaction commits (PostgreSQL NOTIFY; in-process otherwise)."""
    session.info["wake_workers"] = True
    if _is_postgres(session):
        await session.execute(text(f"NOTIFY {WAKEUP_CHANNEL}"))
