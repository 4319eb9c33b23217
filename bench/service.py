"""orgmirror as a user runs it: a fresh PostgreSQL database, the API, worker processes.

The API for set-up and polling runs in this process (``create_app`` on an
``httpx.ASGITransport``); workers are real ``orgmirror worker`` processes on the same
database. Each benchmark database is created for the run and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from pydantic import SecretStr

from app import migrations
from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.main import create_app
from app.runtime import Runtime
from app.security import ADMIN_SCOPE, mint_token
from app.statuses import TERMINAL_STATUSES
from bench.settings import (
    ADMIN_USER,
    ENCRYPTION_KEY,
    JWT_SECRET,
    ORG,
    PG_ADMIN_DSN,
    ROBOT,
    ROBOT_TOKEN,
    SOURCE_NAMESPACE,
)

ORGMIRROR = Path(sys.executable).with_name("orgmirror")
WAKEUP_CHANNEL = "orgmirror_wakeup"  # app/repositories/runs.py: NOTIFY on every run transition
# The end of a run is seen through the worker's NOTIFY; this poll is only the safety net (a
# tighter one would take CPU from the worker being measured).
POLL_FALLBACK = 1.0
MIRROR_URL = f"/api/v1/organization/{ORG}/mirror"


def sqlalchemy_url(database: str) -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


def libpq_dsn(database: str) -> str:
    return PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{database}"


@contextlib.asynccontextmanager
async def fresh_database(label: str) -> AsyncIterator[str]:
    """A new, migrated PostgreSQL database (its name), dropped on exit."""
    name = f"orgmirror_bench_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        await asyncio.to_thread(migrations.upgrade, sqlalchemy_url(name))
        yield name
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def service_settings(database: str, target_host: str = "127.0.0.1:1") -> Settings:
    return Settings(
        database_url=sqlalchemy_url(database),
        jwt_secret=SecretStr(JWT_SECRET),
        encryption_key=SecretStr(ENCRYPTION_KEY),
        ssrf_allowed_hosts=["127.0.0.1"],
        target_registry=f"http://{target_host}",
    )


def service_env(database: str, home: Path, target_host: str, **extra: str) -> dict[str, str]:
    """The environment of an ``orgmirror`` process: production mode on PostgreSQL."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "ORGMIRROR_DATABASE_URL": sqlalchemy_url(database),
        "ORGMIRROR_JWT_SECRET": JWT_SECRET,
        "ORGMIRROR_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "ORGMIRROR_TARGET_REGISTRY": f"http://{target_host}",
        "ORGMIRROR_SSRF_ALLOWED_HOSTS": "127.0.0.1",
    }
    env.update(extra)
    return env


def admin_token(settings: Settings) -> str:
    return mint_token(
        settings,
        username=ADMIN_USER,
        scopes=[ADMIN_SCOPE],
        lifetime_seconds=24 * 3600,
        now=int(time.time()),
    )


class RunFailed(RuntimeError):
    """A mirror run did not end SUCCESS, or did not end in time."""


@dataclass
class Api:
    """The orgmirror API in this process, authenticated as the org's admin."""

    runtime: Runtime
    client: httpx.AsyncClient
    database: str

    @functools.cached_property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {admin_token(self.runtime.settings)}"}

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.client.request(method, path, headers=self.headers, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} → {response.status_code}: {response.text}")
        return response

    async def create_org_and_robot(self) -> None:
        await self.call("POST", "/api/v1/organization/", json={"name": ORG})
        await self.call(
            "PUT", f"/api/v1/organization/{ORG}/robots/{ROBOT}", json={"token": ROBOT_TOKEN}
        )

    async def create_config(self, source_url: str, namespace: str = SOURCE_NAMESPACE) -> None:
        body = {
            "external_registry_type": "oci",
            "external_registry_url": source_url,
            "external_namespace": namespace,
            "robot_username": f"{ORG}+{ROBOT}",
            "visibility": "private",
            "sync_interval": 86400,
            # Far in the future: only sync-now starts a run during the benchmark.
            "sync_start_date": "2099-01-01T00:00:00Z",
        }
        await self.call("POST", MIRROR_URL, json=body)

    async def config(self) -> dict[str, Any]:
        body: dict[str, Any] = (await self.call("GET", MIRROR_URL)).json()
        return body

    async def sync_now(self) -> None:
        await self.call("POST", f"{MIRROR_URL}/sync-now")

    async def cancel(self) -> None:
        await self.call("POST", f"{MIRROR_URL}/sync-cancel")


@contextlib.asynccontextmanager
async def api_on(database: str, target_host: str = "127.0.0.1:1") -> AsyncIterator[Api]:
    settings = service_settings(database, target_host)
    engine = create_engine(settings.effective_database_url)
    runtime = Runtime.assemble(settings, engine, create_sessionmaker(engine))
    transport = httpx.ASGITransport(app=create_app(runtime=runtime))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            yield Api(runtime, client, database)
    finally:
        await runtime.close()


class RunWatcher:
    """Tells when a run may have ended: LISTENs on the channel the worker NOTIFYs at every
    run transition, so the poll of GET comes right after the end without busy polling
    (which would steal CPU from the worker on this 2-core machine)."""

    def __init__(self, database: str) -> None:
        self._dsn = libpq_dsn(database)
        self._event = asyncio.Event()
        self._connection: asyncpg.Connection | None = None

    async def __aenter__(self) -> RunWatcher:
        self._connection = await asyncpg.connect(self._dsn)
        await self._connection.add_listener(WAKEUP_CHANNEL, lambda *_: self._event.set())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def wait_terminal(
        self, api: Api, seconds: float, alive: Callable[[], bool] = lambda: True
    ) -> dict[str, Any]:
        """GET the config after every notification (and every second) until it is terminal;
        give up when ``alive()`` says the worker died or after ``seconds``."""
        deadline = time.monotonic() + seconds
        while True:
            self._event.clear()
            config = await api.config()
            if config["sync_status"] in TERMINAL_STATUSES:
                return config
            if not alive():
                raise RunFailed(f"the worker exited during the run: {config}")
            if time.monotonic() > deadline:
                raise RunFailed(f"no terminal status within {seconds:.0f}s: {config}")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_FALLBACK):
                    await self._event.wait()
