"""The worker loop: claim, discover, sync repositories, renew leases, shut down cleanly.

A worker claims one due config at a time for discovery, and up to ``worker_concurrency``
queued repositories of any running config (its own or another worker's). Leases are renewed
every second; a lease that comes back lost means the run was cancelled or deleted (or taken
over), and the work on it is cancelled at once, killing its skopeo processes. On shutdown the
worker stops claiming, cancels its work and hands its leases back so another worker resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy.exc import DBAPIError, OperationalError

from app.db import utcnow
from app.registry.skopeo import SkopeoRunner
from app.registry.target import TargetRegistry
from app.repositories import runs as runs_repo
from app.repositories.runs import RepoClaim
from app.runtime import Runtime
from app.services import runs
from app.services.repo_sync import SyncContext, SyncSettings, record_crash, sync_repository
from app.workers.wakeup import asyncpg_dsn, listen

log = logging.getLogger("orgmirror.worker")

CHECK_INTERVAL = 1.0
SWEEP_INTERVAL = 10.0
DB_ERRORS = (DBAPIError, OperationalError, OSError)


def target_from(runtime: Runtime) -> TargetRegistry:
    settings = runtime.settings
    token = settings.target_api_token
    return TargetRegistry.parse(
        settings.target_registry,
        tls_verify=settings.target_tls_verify,
        ca_file=str(settings.ca_file) if settings.ca_file else None,
        kind=settings.target_kind,
        api_url=settings.target_api_url,
        api_token=token.get_secret_value() if token else None,
    )


class Worker:
    def __init__(
        self,
        runtime: Runtime,
        *,
        worker_id: str | None = None,
        skopeo: SkopeoRunner | None = None,
        discovery_retry_delay: float = 30.0,
    ) -> None:
        settings = runtime.settings
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.runtime = runtime
        self.stop_event = asyncio.Event()
        self._cert_dir = self._prepare_cert_dir()
        self.run_ctx = runs.RunContext(
            sessionmaker=runtime.sessionmaker,
            registry=runtime.registry,
            box=runtime.box,
            me=self.id,
            lease_seconds=settings.lease_seconds,
            discovery_retry_delay=discovery_retry_delay,
            ca_file=str(settings.ca_file) if settings.ca_file else None,
        )
        self.sync_ctx = SyncContext(
            sessionmaker=runtime.sessionmaker,
            registry=runtime.registry,
            box=runtime.box,
            skopeo=skopeo or SkopeoRunner(settings.skopeo_path),
            target=target_from(runtime),
            settings=SyncSettings(
                tag_concurrency=settings.tag_concurrency,
                recheck_every=settings.target_recheck_every,
                copy_attempts=settings.copy_attempts,
            ),
            me=self.id,
            copy_slots=asyncio.Semaphore(settings.worker_concurrency),
            cert_dir=str(self._cert_dir) if self._cert_dir else None,
        )
        self._repos: dict[int, asyncio.Task[None]] = {}
        self._discovery: tuple[int, asyncio.Task[None]] | None = None
        self._last_sweep = 0.0

    def _prepare_cert_dir(self) -> Path | None:
        """skopeo reads extra CAs from a directory of ``*.crt`` files."""
        ca_file = self.runtime.settings.ca_file
        if ca_file is None:
            return None
        directory = Path(tempfile.mkdtemp(prefix="orgmirror-certs-"))
        shutil.copyfile(ca_file, directory / "ca.crt")
        return directory

    def stop(self) -> None:
        self.stop_event.set()
        self.runtime.wakeup.set()

    async def run(self) -> None:
        """Work until ``stop()``; then hand everything back."""
        log.info("worker %s started", self.id)
        background = [asyncio.create_task(self._keep_leases())]
        dsn = asyncpg_dsn(self.runtime.settings.effective_database_url)
        if dsn is not None:
            background.append(
                asyncio.create_task(listen(dsn, self.runtime.wakeup, self.stop_event))
            )
        try:
            while not self.stop_event.is_set():
                worked = await self._tick_safely()
                if not worked:
                    await self.runtime.wakeup.wait(self.runtime.settings.worker_poll_interval)
        finally:
            await self._shutdown(background)
            log.info("worker %s stopped", self.id)

    async def _tick_safely(self) -> bool:
        try:
            return await self._tick()
        except DB_ERRORS as exc:
            log.warning("worker %s: database unavailable (%s); retrying", self.id, exc)
            return False

    async def _tick(self) -> bool:
        worked = False
        if self._discovery is None or self._discovery[1].done():
            config_id = await runs.claim_next_config(self.run_ctx)
            if config_id is not None:
                task = asyncio.create_task(self._discover(config_id))
                self._discovery = (config_id, task)
                worked = True
        free = self.runtime.settings.worker_concurrency - len(self._repos)
        if free > 0:
            now = utcnow()
            async with self.runtime.sessionmaker() as session:
                claims = await runs_repo.claim_repositories(
                    session,
                    me=self.id,
                    now=now,
                    lease_until=now + timedelta(seconds=self.runtime.settings.lease_seconds),
                    limit=free,
                )
                await session.commit()
            for claim in claims:
                self._repos[claim.repository_id] = asyncio.create_task(self._sync(claim))
            worked = worked or bool(claims)
        await self._sweep()
        return worked

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_sweep >= SWEEP_INTERVAL:
            self._last_sweep = loop.time()
            await runs.finalize_stragglers(self.run_ctx)

    async def _discover(self, config_id: int) -> None:
        try:
            await runs.discover(self.run_ctx, config_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("discovery of config %s failed unexpectedly", config_id)
            with contextlib.suppress(*DB_ERRORS):
                await runs.discovery_crashed(self.run_ctx, config_id, exc)
        finally:
            self.runtime.wakeup.set()

    async def _sync(self, claim: RepoClaim) -> None:
        try:
            await sync_repository(self.sync_ctx, claim)
            # The outcome is recorded and the lease released: stop renewing (a renewal would
            # now find the lease gone and cancel this task in the middle of finalizing).
            self._repos.pop(claim.repository_id, None)
            await runs.finalize_if_done(self.run_ctx, claim.config_id)
        except asyncio.CancelledError:
            raise
        except DB_ERRORS:
            log.exception(
                "sync of repository %s lost the database; its lease will expire and another "
                "worker will resume it",
                claim.name,
            )
        except Exception as exc:
            log.exception("sync of repository %s failed unexpectedly", claim.name)
            with contextlib.suppress(*DB_ERRORS):
                await record_crash(self.sync_ctx, claim, exc)
                await runs.finalize_if_done(self.run_ctx, claim.config_id)
        finally:
            self._repos.pop(claim.repository_id, None)
            self.runtime.wakeup.set()

    async def _keep_leases(self) -> None:
        while not self.stop_event.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CHECK_INTERVAL):
                    await self.stop_event.wait()
            try:
                await self._renew()
            except DB_ERRORS as exc:
                log.warning("worker %s: lease renewal failed (%s)", self.id, exc)

    async def _renew(self) -> None:
        now = utcnow()
        until = now + timedelta(seconds=self.runtime.settings.lease_seconds)
        ids = list(self._repos)
        discovery = self._discovery
        async with self.runtime.sessionmaker() as session:
            kept = await runs_repo.renew_repositories(
                session, ids=ids, me=self.id, lease_until=until
            )
            keep_discovery = (
                discovery is None
                or discovery[1].done()
                or await runs_repo.renew_config(
                    session, config_id=discovery[0], me=self.id, lease_until=until
                )
            )
            await session.commit()
        for repository_id in set(ids) - kept:
            task = self._repos.get(repository_id)
            if task is not None:
                log.info("repository %s: cancelled or deleted; stopping its copies", repository_id)
                task.cancel()
        if not keep_discovery and discovery is not None:
            discovery[1].cancel()

    async def _shutdown(self, background: list[asyncio.Task[None]]) -> None:
        for task in background:
            task.cancel()
        held = list(self._repos)
        work = list(self._repos.values())
        discovery = None
        if self._discovery is not None and not self._discovery[1].done():
            discovery = self._discovery[0]
            work.append(self._discovery[1])
        for task in work:
            task.cancel()
        await asyncio.gather(*background, *work, return_exceptions=True)
        with contextlib.suppress(*DB_ERRORS):
            await self._release(held, discovery)
        if self._cert_dir is not None:
            shutil.rmtree(self._cert_dir, ignore_errors=True)

    async def _release(self, repository_ids: list[int], config_id: int | None) -> None:
        """Hand unfinished work back so another worker resumes it now, not at lease expiry."""
        async with self.runtime.sessionmaker() as session:
            await runs_repo.release_repositories(session, ids=repository_ids, me=self.id)
            if config_id is not None:
                await runs_repo.release_config(
                    session, config_id=config_id, me=self.id, now=utcnow()
                )
            await session.commit()
        if repository_ids or config_id is not None:
            log.info(
                "worker %s handed back %d repositories%s",
                self.id,
                len(repository_ids),
                " and a discovery" if config_id is not None else "",
            )
