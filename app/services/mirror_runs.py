"""Triggering, cancelling and observing runs from the API (SPEC §1.3, §1.5)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.errors import InvalidRequest, NotFound
from app.registry.client import RegistryClient
from app.registry.sources import verify_source
from app.repositories import audit as audit_repo
from app.repositories import mirror as mirror_repo
from app.repositories import runs as runs_repo
from app.schemas.common import format_api_datetime
from app.schemas.mirror import MirrorRepositoryPage, MirrorRepositoryRead, VerifyResult
from app.security import SecretBox
from app.services.access import OrgAccess
from app.services.mirror_configs import load_config, source_for
from app.services.schedule import next_slot
from app.statuses import REPOSITORY_STATUSES, SyncStatus

MAX_PAGE_SIZE = 500
QUEUED_OR_ACTIVE = (SyncStatus.SYNC_NOW, SyncStatus.SYNCING)


async def sync_now(session: AsyncSession, *, access: OrgAccess, coalesce: bool) -> None:
    """Queue a run now; 404 if one is queued or active, unless ``coalesce`` asks for a follow-up."""
    config = await load_config(session, access)
    status = SyncStatus(config.sync_status)
    if status in QUEUED_OR_ACTIVE:
        if not coalesce:
            state = "queued" if status is SyncStatus.SYNC_NOW else "running"
            raise NotFound(
                f"A sync of '{access.org_name}' is already {state}; poll GET .../mirror for its "
                "outcome, or call sync-now?coalesce=true to queue one follow-up run"
            )
        if status is SyncStatus.SYNCING and not config.follow_up_requested:
            config.follow_up_requested = True
            await _audit(session, access, "mirror.sync_now", {"coalesced": True})
        return
    config.sync_status = SyncStatus.SYNC_NOW
    config.sync_start_date = utcnow().replace(microsecond=0)
    await session.flush()
    await _audit(session, access, "mirror.sync_now", {"coalesced": False})
    await runs_repo.notify_workers(session)


async def cancel(session: AsyncSession, *, access: OrgAccess) -> None:
    """Stop the current run (if any); the schedule continues at its next slot."""
    config = await load_config(session, access)
    if config.sync_status == SyncStatus.CANCEL:
        raise InvalidRequest(f"The mirror of '{access.org_name}' is already cancelled")
    now = utcnow()
    was_running = config.sync_status == SyncStatus.SYNCING
    await mirror_repo.set_repository_status(
        session,
        config_id=config.id,
        from_statuses=QUEUED_OR_ACTIVE,
        to_status=SyncStatus.CANCEL,
        message=f"Cancelled by {access.actor}",
    )
    if was_running:
        totals = await runs_repo.run_totals(session, config.id)
        config.last_sync = {
            "started": format_api_datetime(config.run_started_at or now),
            "finished": format_api_datetime(now),
            "status": SyncStatus.CANCEL.value,
            **totals,
            "message": f"Cancelled by {access.actor}",
        }
    config.sync_status = SyncStatus.CANCEL
    config.follow_up_requested = False
    config.lease_owner = None
    config.run_phase = None
    config.sync_expiration_date = None
    if config.sync_start_date <= now:
        config.sync_start_date = next_slot(
            anchor=config.schedule_anchor, interval=config.sync_interval, now=now
        )
    await session.flush()
    await _audit(session, access, "mirror.cancel", {"was_running": was_running})
    await runs_repo.notify_workers(session)


def parse_status(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return SyncStatus(value.strip().upper()).value
    except ValueError:
        names = ", ".join(s.value for s in REPOSITORY_STATUSES)
        raise InvalidRequest(f"status: must be one of {names} (got {value!r})") from None


async def list_repositories(
    session: AsyncSession, *, access: OrgAccess, page: int, limit: int, status: str | None
) -> MirrorRepositoryPage:
    """One page of tracked repositories, ordered by name; ``limit`` is capped at 500."""
    wanted = parse_status(status)
    limit = min(limit, MAX_PAGE_SIZE)
    config = await load_config(session, access)
    rows, total = await mirror_repo.list_repositories(
        session, config_id=config.id, status=wanted, offset=(page - 1) * limit, limit=limit
    )
    items = [
        MirrorRepositoryRead(
            name=row.name,
            sync_status=row.sync_status,
            discovery_date=row.discovery_date,
            last_sync_date=row.last_sync_date,
            status_message=row.status_message,
            quay_repository=f"{access.org_name}/{row.name}" if row.in_target else None,
            tags_total=row.tags_total,
            tags_copied=row.tags_copied,
            tags_skipped=row.tags_skipped,
            tags_failed=row.tags_failed,
        )
        for row in rows
    ]
    return MirrorRepositoryPage(
        repositories=items, page=page, limit=limit, total=total, has_next=page * limit < total
    )


async def _audit(
    session: AsyncSession, access: OrgAccess, action: str, details: dict[str, bool]
) -> None:
    await audit_repo.add_event(
        session, actor=access.actor, org_name=access.org_name, action=action, details=details
    )


async def verify(
    session: AsyncSession, *, access: OrgAccess, box: SecretBox, registry: RegistryClient
) -> VerifyResult:
    """Test the stored config against its source: DNS and SSRF rules, TLS, credentials,
    namespace. Source problems are answers (success false), never errors."""
    config = await load_config(session, access)
    source = source_for(config, org_name=access.org_name, box=box)
    await mirror_repo.end_read(session)
    outcome = await verify_source(registry, source)
    return VerifyResult(success=outcome.success, message=outcome.message)
