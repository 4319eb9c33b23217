"""SQL for org mirror configs and their tracked repositories."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import MirrorRepository, OrgMirrorConfig


async def get_config(session: AsyncSession, org_id: int) -> OrgMirrorConfig | None:
    result = await session.execute(select(OrgMirrorConfig).where(OrgMirrorConfig.org_id == org_id))
    return result.scalar_one_or_none()


async def add_config(session: AsyncSession, config: OrgMirrorConfig) -> OrgMirrorConfig:
    session.add(config)
    await session.flush()
    return config


async def delete_config(session: AsyncSession, config_id: int) -> None:
    # Tracking rows go first explicitly, so the result does not depend on FK cascades.
    await session.execute(delete(MirrorRepository).where(MirrorRepository.config_id == config_id))
    await session.execute(delete(OrgMirrorConfig).where(OrgMirrorConfig.id == config_id))


async def status_counts(session: AsyncSession, config_id: int) -> dict[str, int]:
    result = await session.execute(
        select(MirrorRepository.sync_status, func.count())
        .where(MirrorRepository.config_id == config_id)
        .group_by(MirrorRepository.sync_status)
    )
    return {str(row[0]): int(row[1]) for row in result.all()}


async def list_repositories(
    session: AsyncSession, *, config_id: int, status: str | None, offset: int, limit: int
) -> tuple[Sequence[MirrorRepository], int]:
    where: list[Any] = [MirrorRepository.config_id == config_id]
    if status is not None:
        where.append(MirrorRepository.sync_status == status)
    total = await session.scalar(select(func.count()).select_from(MirrorRepository).where(*where))
    rows = await session.execute(
        select(MirrorRepository)
        .where(*where)
        .order_by(MirrorRepository.name)
        .offset(offset)
        .limit(limit)
    )
    return rows.scalars().all(), int(total or 0)


async def set_repository_status(
    session: AsyncSession,
    *,
    config_id: int,
    from_statuses: Iterable[str],
    to_status: str,
    message: str | None,
) -> int:
    result = await session.execute(
        update(MirrorRepository)
        .where(
            MirrorRepository.config_id == config_id,
            MirrorRepository.sync_status.in_(list(from_statuses)),
        )
        .values(
            sync_status=to_status, status_message=message, lease_owner=None, lease_expires_at=None
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def end_read(session: AsyncSession) -> None:
    """End a read-only transaction so no pooled connection is held across network I/O."""
    await session.rollback()
