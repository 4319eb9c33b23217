"""SQL for audit events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AuditEvent


async def add_event(
    session: AsyncSession, *, actor: str, org_name: str, action: str, details: dict[str, Any]
) -> None:
    session.add(AuditEvent(actor=actor, org_name=org_name, action=action, details=details))
    await session.flush()


async def list_events(session: AsyncSession, org_name: str) -> Sequence[AuditEvent]:
    result = await session.execute(
        select(AuditEvent).where(AuditEvent.org_name == org_name).order_by(AuditEvent.id)
    )
    return result.scalars().all()
