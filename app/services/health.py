"""Liveness, readiness and the database-derived metrics."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app import metrics
from app.errors import NotReady
from app.repositories import health as health_repo
from app.statuses import CONFIG_STATUSES, REPOSITORY_STATUSES


@dataclass(frozen=True)
class Readiness:
    ready: bool
    database: str
    migrations: str


async def readiness(session: AsyncSession, *, head: str | None) -> Readiness:
    """Ready when the database answers and its schema is at the code's migration head."""
    try:
        current = await health_repo.schema_revision(session)
    except Exception as exc:  # any failure to reach the database means "not ready"
        return Readiness(False, f"unreachable: {exc.__class__.__name__}", "unknown")
    if current == head:
        return Readiness(True, "ok", f"current ({head})")
    return Readiness(
        False, "ok", f"database at {current or 'no schema'}, code at {head}: run orgmirror migrate"
    )


async def require_ready(session: AsyncSession, *, head: str | None) -> dict[str, str]:
    state = await readiness(session, head=head)
    if not state.ready:
        raise NotReady(f"Not ready: database {state.database}; migrations {state.migrations}")
    return {"status": "ready", "database": state.database, "migrations": state.migrations}


async def refresh_gauges(session: AsyncSession) -> None:
    configs = await health_repo.config_status_counts(session)
    for status in CONFIG_STATUSES:
        metrics.CONFIGS.labels(status=status.value).set(configs.get(status.value, 0))
    repositories = await health_repo.repository_status_counts(session)
    for status in REPOSITORY_STATUSES:
        metrics.TRACKED.labels(status=status.value).set(repositories.get(status.value, 0))
    metrics.LAST_SUCCESS.clear()
    for org, finished in await health_repo.last_successes(session):
        metrics.LAST_SUCCESS.labels(org=org).set(finished.timestamp())
