"""Waking workers without waiting for a poll: an in-process event, fed by PostgreSQL NOTIFY.

On the embedded default the API and the worker share a process, and the API sets the event
after its commit. On PostgreSQL every worker also LISTENs on one channel, so a sync-now, a
new config or a cancel sent to any API process reaches every worker within a second.
Polling stays as the fallback when the listener is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from app.repositories.runs import WAKEUP_CHANNEL

log = logging.getLogger("orgmirror.worker")


class Wakeup:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> bool:
        """True when woken, False when the timeout passed."""
        try:
            async with asyncio.timeout(seconds):
                await self._event.wait()
        except TimeoutError:
            return False
        self._event.clear()
        return True


def asyncpg_dsn(sqlalchemy_url: str) -> str | None:
    """The plain libpq DSN of a ``postgresql+asyncpg://`` URL, or None for other databases."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if sqlalchemy_url.startswith(prefix):
            return "postgresql://" + sqlalchemy_url[len(prefix) :]
    return None


async def listen(dsn: str, wakeup: Wakeup, stop: asyncio.Event, retry_delay: float = 2.0) -> None:
    """LISTEN until ``stop``; reconnect after failures (polling covers the gap)."""
    while not stop.is_set():
        connection: asyncpg.Connection | None = None
        try:
            connection = await asyncpg.connect(dsn)
            await connection.add_listener(WAKEUP_CHANNEL, lambda *_: wakeup.set())
            wakeup.set()  # catch anything sent while we were not listening
            while not stop.is_set() and not connection.is_closed():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        await stop.wait()
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("LISTEN connection failed (%s); falling back to polling", exc)
        finally:
            if connection is not None and not connection.is_closed():
                await connection.close()
        if not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(retry_delay):
                    await stop.wait()
