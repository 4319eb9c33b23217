"""SQL for readiness and for the database-derived metrics."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import MirrorRepository, Organization, OrgMirrorConfig


async def schema_revision(session: AsyncSession) -> str | None:
    """The Alembic revision the database is at (None before the first migration)."""
    try:
        row = await session.execute(text("SELECT version_num FROM alembic_version"))
    except Exception:  # the table does not exist yet: nothing migrated
        await session.rollback()
        return None
    value = row.scalar_one_or_none()
    return str(value) if value is not None else None


async def config_status_counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(OrgMirrorConfig.sync_status, func.count()).group_by(OrgMirrorConfig.sync_status)
    )
    return {str(r[0]): int(r[1]) for r in rows.all()}


async def repository_status_counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(MirrorRepository.sync_status, func.count()).group_by(MirrorRepository.sync_status)
    )
    return {str(r[0]): int(r[1]) for r in rows.all()}


async def last_successes(session: AsyncSession) -> list[tuple[str, datetime]]:
    rows = await session.execute(
        select(Organization.name, OrgMirrorConfig.last_success_at)
        .join(OrgMirrorConfig, OrgMirrorConfig.org_id == Organization.id)
        .where(OrgMirrorConfig.last_success_at.is_not(None))
    )
    return [(str(r[0]), r[1]) for r in rows.all() if r[1] is not None]
