"""Sync one repository (SPEC §4.3): compare digests, copy only what differs.

Per tag: HEAD the source. If the digest equals the one stored from the last mirror, the tag
is skipped with no other request. Otherwise (or on every Nth run) HEAD the target too, and
only when that differs run ``skopeo copy --all --preserve-digests``, retried on transient
failures, then check the target's digest. An unchanged tag therefore costs one request to
the source, no skopeo process and nothing at all on the target.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import metrics
from app.db import utcnow
from app.errors import InvalidRequest
from app.registry.client import RegistryClient
from app.registry.errors import RegistryError, RegistryNotFound
from app.registry.http import Endpoint
from app.registry.skopeo import CopySide, RegistryAuth, SkopeoRunner
from app.registry.sources import Source
from app.registry.target import TargetRegistry, ensure_quay_repository
from app.repositories import runs as runs_repo
from app.repositories.runs import RepoClaim
from app.security import SecretBox
from app.services.mirror_configs import source_for
from app.services.robots import robot_purpose
from app.statuses import SyncStatus

log = logging.getLogger("orgmirror.sync")
MESSAGE_LIMIT = 2000


@dataclass(frozen=True)
class SyncSettings:
    tag_concurrency: int
    recheck_every: int
    copy_attempts: int
    retry_base_delay: float = 1.0


@dataclass
class SyncContext:
    sessionmaker: async_sessionmaker[AsyncSession]
    registry: RegistryClient
    box: SecretBox
    skopeo: SkopeoRunner
    target: TargetRegistry
    settings: SyncSettings
    me: str
    copy_slots: asyncio.Semaphore
    cert_dir: str | None = None


@dataclass(frozen=True)
class RepoJob:
    claim: RepoClaim
    org: str
    source: Source
    target: Endpoint
    robot: RegistryAuth
    visibility: str
    skopeo_timeout: int
    recheck: bool
    known: dict[str, str]


@dataclass
class TagOutcome:
    copied: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


async def load_job(ctx: SyncContext, claim: RepoClaim) -> RepoJob | None:
    async with ctx.sessionmaker() as session:
        loaded = await runs_repo.get_config_for_run(session, claim.config_id)
        if loaded is None:
            return None
        config, org, robot = loaded
        known = await runs_repo.tag_digests(session, claim.repository_id)
    token = ctx.box.decrypt(robot.token_encrypted, purpose=robot_purpose(org, robot.shortname))
    username = f"{org}+{robot.shortname}"
    return RepoJob(
        claim=claim,
        org=org,
        source=source_for(config, org_name=org, box=ctx.box, ca_file=ctx.target.ca_file),
        target=ctx.target.endpoint(username, token),
        robot=RegistryAuth(ctx.target.host, username, token),
        visibility=config.visibility,
        skopeo_timeout=config.skopeo_timeout,
        recheck=config.run_count % ctx.settings.recheck_every == 0,
        known=known,
    )


async def sync_repository(ctx: SyncContext, claim: RepoClaim) -> None:
    """Mirror every tag of one claimed repository and record the outcome (if still ours)."""
    job = await load_job(ctx, claim)
    if job is None:
        return
    source_repo = f"{job.source.namespace}/{claim.name}"
    try:
        await ctx.registry.check_endpoint(job.source.endpoint)
        if not job.known or job.recheck:
            # Only a repository we never mirrored into (or a periodic recheck) can be missing
            # in the target: unchanged runs send nothing to Quay's API either.
            await ensure_quay_repository(
                ctx.registry,
                ctx.target,
                org=job.org,
                repository=claim.name,
                visibility=job.visibility,
            )
        tags = await ctx.registry.list_tags(job.source.endpoint, source_repo)
    except (RegistryError, InvalidRequest) as exc:
        await _record(ctx, job, [], TagOutcome(), failure=exc.detail)
        return
    outcome = await _sync_tags(ctx, job, source_repo, tags)
    await _record(ctx, job, tags, outcome)


async def _sync_tags(
    ctx: SyncContext, job: RepoJob, source_repo: str, tags: list[str]
) -> TagOutcome:
    """Three phases: source digests (unchanged tags stop here), a comparison with the target
    (listed once when several tags need it), then the copies — batched into one skopeo
    process when several tags need copying, each verified by digest."""
    outcome = TagOutcome()
    candidates: dict[str, str] = {}
    pending: dict[str, str] = {}
    slots = asyncio.Semaphore(ctx.settings.tag_concurrency)

    async def bounded(work: Awaitable[None]) -> None:
        async with slots:
            await work

    await asyncio.gather(
        *(bounded(_source_digest(ctx, job, source_repo, t, outcome, candidates)) for t in tags)
    )
    listed = await _target_tags(ctx, job) if len(candidates) > 1 else None
    await asyncio.gather(
        *(
            bounded(_compare_target(ctx, job, tag, digest, listed, outcome, pending))
            for tag, digest in candidates.items()
        )
    )
    batched = len(pending) > 1 and await _copy_batch(ctx, job, source_repo, sorted(pending))
    await asyncio.gather(
        *(
            bounded(_land(ctx, job, source_repo, tag, digest, outcome, batched))
            for tag, digest in pending.items()
        )
    )
    return outcome


async def _source_digest(
    ctx: SyncContext,
    job: RepoJob,
    source_repo: str,
    tag: str,
    outcome: TagOutcome,
    candidates: dict[str, str],
) -> None:
    """HEAD the source: a tag whose digest equals the stored one is skipped right here."""
    try:
        digest = await ctx.registry.manifest_digest(job.source.endpoint, source_repo, tag)
    except RegistryError as exc:
        outcome.failed[tag] = f"source: {exc.detail}"
        return
    if job.known.get(tag) == digest and not job.recheck:
        outcome.skipped[tag] = digest
    else:
        candidates[tag] = digest


async def _target_tags(ctx: SyncContext, job: RepoJob) -> set[str] | None:
    """The target repository's tags in one request (empty when it does not exist yet); None
    when the listing fails, and then every candidate is compared by HEAD."""
    try:
        return set(await ctx.registry.list_tags(job.target, f"{job.org}/{job.claim.name}"))
    except RegistryNotFound:
        return set()
    except RegistryError:
        return None


async def _compare_target(
    ctx: SyncContext,
    job: RepoJob,
    tag: str,
    digest: str,
    listed: set[str] | None,
    outcome: TagOutcome,
    pending: dict[str, str],
) -> None:
    """A candidate the target does not list is missing there: no HEAD needed."""
    if listed is not None and tag not in listed:
        pending[tag] = digest
        return
    try:
        in_target = await _target_digest(ctx, job, f"{job.org}/{job.claim.name}", tag)
    except RegistryError as exc:
        outcome.failed[tag] = f"target: {exc.detail}"
        return
    if in_target == digest:
        outcome.skipped[tag] = digest
    else:
        pending[tag] = digest


async def _land(
    ctx: SyncContext,
    job: RepoJob,
    source_repo: str,
    tag: str,
    digest: str,
    outcome: TagOutcome,
    batched: bool,
) -> None:
    """Verify what the batch copied; copy per tag (with retries) what it did not land."""
    target_repo = f"{job.org}/{job.claim.name}"
    try:
        if batched and await _target_digest(ctx, job, target_repo, tag) == digest:
            outcome.copied[tag] = digest
            return
        error = await _copy(ctx, job, source_repo, tag)
        if error is None:
            mirrored = await _target_digest(ctx, job, target_repo, tag)
            if mirrored != digest:
                error = f"target has digest {mirrored} after the copy, expected {digest}"
    except RegistryError as exc:
        error = f"target: {exc.detail}"
    if error is None:
        outcome.copied[tag] = digest
    else:
        outcome.failed[tag] = error


async def _copy_batch(ctx: SyncContext, job: RepoJob, source_repo: str, tags: list[str]) -> bool:
    """One ``skopeo sync`` for several tags; whatever it did not land is copied per tag."""
    source, target = _copy_sides(ctx, job, source_repo, None)
    parent = "/".join([job.org, *job.claim.name.split("/")[:-1]])
    destination = CopySide(
        reference=f"{ctx.target.host}/{parent}",
        auth=target.auth,
        tls_verify=target.tls_verify,
        cert_dir=target.cert_dir,
    )
    async with ctx.copy_slots:
        result = await ctx.skopeo.sync_tags(
            source,
            destination,
            tags,
            time_limit=job.skopeo_timeout * len(tags),
            proxy=job.source.endpoint.proxy,
        )
    metrics.SKOPEO_SECONDS.labels(outcome="ok" if result.ok else "failed").observe(result.seconds)
    log.info(
        "sync batch %s tags=%d ok=%s seconds=%.2f",
        source_repo,
        len(tags),
        result.ok,
        result.seconds,
    )
    return True


async def _target_digest(ctx: SyncContext, job: RepoJob, repository: str, tag: str) -> str | None:
    try:
        return await ctx.registry.manifest_digest(job.target, repository, tag)
    except RegistryNotFound:
        return None


def _copy_sides(
    ctx: SyncContext, job: RepoJob, source_repo: str, tag: str | None
) -> tuple[CopySide, CopySide]:
    """Both sides of a copy of ``tag`` (or, with None, of the repository as a whole)."""
    src = job.source.endpoint
    suffix = f":{tag}" if tag is not None else ""
    source = CopySide(
        reference=f"docker://{src.host}/{source_repo}{suffix}",
        auth=RegistryAuth(src.host, src.username, src.password or "") if src.username else None,
        tls_verify=src.verify_tls and src.url.startswith("https://"),
        cert_dir=ctx.cert_dir,
    )
    target = CopySide(
        reference=ctx.target.reference(job.org, job.claim.name, tag or ""),
        auth=job.robot,
        tls_verify=ctx.target.tls_verify,
        cert_dir=ctx.cert_dir,
    )
    return source, target


async def _copy(ctx: SyncContext, job: RepoJob, source_repo: str, tag: str) -> str | None:
    """Copy one tag with skopeo, retrying transient failures; None on success, else why."""
    src = job.source.endpoint
    source, target = _copy_sides(ctx, job, source_repo, tag)
    reason = "not attempted"
    for attempt in range(1, ctx.settings.copy_attempts + 1):
        async with ctx.copy_slots:
            result = await ctx.skopeo.copy(
                source, target, time_limit=job.skopeo_timeout, proxy=src.proxy
            )
        log.info(
            "copy %s:%s -> %s/%s attempt=%d ok=%s seconds=%.2f",
            source_repo,
            tag,
            job.org,
            job.claim.name,
            attempt,
            result.ok,
            result.seconds,
        )
        metrics.SKOPEO_SECONDS.labels(outcome="ok" if result.ok else "failed").observe(
            result.seconds
        )
        if result.ok:
            return None
        reason = result.reason()
        if not result.transient or attempt == ctx.settings.copy_attempts:
            break
        ceiling = ctx.settings.retry_base_delay * 2 ** (attempt - 1)
        await asyncio.sleep(random.uniform(ceiling / 2, ceiling))
    return reason


async def record_crash(ctx: SyncContext, claim: RepoClaim, exc: BaseException) -> None:
    """Safety net: end a repository whose sync hit an unexpected error as FAIL (if still ours),
    so the run can finish instead of retrying the same crash at every lease expiry."""
    message = (
        f"Internal error while syncing ({exc.__class__.__name__}); the worker log has the details"
    )
    values = {"sync_status": SyncStatus.FAIL, "status_message": message, "last_sync_date": utcnow()}
    async with ctx.sessionmaker() as session:
        if await runs_repo.finish_repository(
            session, repository_id=claim.repository_id, me=ctx.me, values=values
        ):
            await session.commit()


def _message(outcome: TagOutcome, total: int, failure: str | None) -> str | None:
    if failure is not None:
        return failure[:MESSAGE_LIMIT]
    if not outcome.failed:
        return None
    parts = [f"{tag}: {why}" for tag, why in sorted(outcome.failed.items())]
    text = f"{len(outcome.failed)} of {total} tags failed: " + "; ".join(parts)
    return text[:MESSAGE_LIMIT]


async def _record(
    ctx: SyncContext,
    job: RepoJob,
    tags: list[str],
    outcome: TagOutcome,
    failure: str | None = None,
) -> None:
    now = utcnow()
    failed = failure is not None or bool(outcome.failed)
    values: dict[str, Any] = {
        "sync_status": SyncStatus.FAIL if failed else SyncStatus.SUCCESS,
        "status_message": _message(outcome, len(tags), failure),
        "last_sync_date": now,
        "tags_total": len(tags),
        "tags_copied": len(outcome.copied),
        "tags_skipped": len(outcome.skipped),
        "tags_failed": len(outcome.failed),
    }
    if outcome.copied or outcome.skipped:
        values["in_target"] = True
    async with ctx.sessionmaker() as session:
        owned = await runs_repo.finish_repository(
            session, repository_id=job.claim.repository_id, me=ctx.me, values=values
        )
        if not owned:
            await session.rollback()
            log.info(
                "repository %s/%s: lease lost (cancelled, deleted or taken over); outcome dropped",
                job.org,
                job.claim.name,
            )
            return
        if failure is None:
            # Only what changed: an unchanged run writes no tag rows at all.
            mirrored = {**outcome.copied, **outcome.skipped}
            changed = {t: d for t, d in mirrored.items() if job.known.get(t) != d}
            vanished = set(job.known) - set(tags)
            if changed or vanished:
                await runs_repo.save_tag_digests(
                    session,
                    repository_id=job.claim.repository_id,
                    digests=changed,
                    keep=tags,
                    now=now,
                )
        await session.commit()
    metrics.REPOSITORIES.labels(status=values["sync_status"].value).inc()
    metrics.TAGS.labels(result="copied").inc(len(outcome.copied))
    metrics.TAGS.labels(result="skipped").inc(len(outcome.skipped))
    metrics.TAGS.labels(result="failed").inc(len(outcome.failed))
    log.info(
        "repository done: org=%s repo=%s status=%s tags=%d copied=%d skipped=%d failed=%d",
        job.org,
        job.claim.name,
        values["sync_status"],
        len(tags),
        len(outcome.copied),
        len(outcome.skipped),
        len(outcome.failed),
    )
