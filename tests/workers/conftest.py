"""Worker fixtures: real commits (no rolled-back outer transaction), real registries, real skopeo.

``mirror_env`` gives an API client and a Runtime on a clean database whose target is a real
htpasswd registry, plus a real source registry seeded per test. Workers run in-process as
asyncio tasks (``start_worker``), each with its own Runtime when several must compete like
separate processes do.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.main import create_app
from app.registry.skopeo import SkopeoRunner
from app.runtime import Runtime
from app.statuses import TERMINAL_STATUSES
from app.workers.worker import Worker
from tests.conftest import auth, make_settings, pg_url
from tests.support.fixtures import ROBOT_PASSWORD
from tests.support.registry_server import RegistryServer

ORG = "myorg"
ROBOT = "robot"
TABLES = (
    "mirrored_tags, mirror_repositories, org_mirror_configs, robot_accounts, org_admins, "
    "organizations, audit_events"
)


@dataclass
class MirrorEnv:
    settings: Settings
    runtime: Runtime
    client: httpx.AsyncClient
    source: RegistryServer
    target: RegistryServer
    url: str = f"/api/v1/organization/{ORG}/mirror"
    workers: list[tuple[Worker, asyncio.Task[None], Runtime]] = field(default_factory=list)
    skopeo: SkopeoRunner = field(default_factory=SkopeoRunner)

    async def start_worker(self, worker_id: str | None = None, **settings: Any) -> Worker:
        """An in-process worker; setting overrides give it a runtime of its own (same DB)."""
        runtime = self.runtime
        if settings:
            runtime = Runtime.assemble(
                self.settings.model_copy(update=settings),
                self.runtime.engine,
                self.runtime.sessionmaker,
            )
            runtime.wakeup = self.runtime.wakeup
        worker = Worker(runtime, worker_id=worker_id, skopeo=self.skopeo, discovery_retry_delay=0.2)
        task = asyncio.create_task(worker.run())
        self.workers.append((worker, task, runtime))
        return worker

    async def stop_workers(self) -> None:
        for worker, task, runtime in self.workers:
            worker.stop()
            await asyncio.wait_for(task, timeout=30)
            if runtime.engine is not self.runtime.engine:
                await runtime.close()
            elif runtime is not self.runtime:
                await runtime.http.aclose()
        self.workers.clear()

    async def create_config(self, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "external_registry_type": "oci",
            "external_registry_url": self.source.url,
            "external_namespace": "src",
            "robot_username": f"{ORG}+{ROBOT}",
            "visibility": "private",
            "sync_interval": 3600,
            "sync_start_date": "2030-01-01T00:00:00Z",
        }
        body.update(overrides)
        response = await self.client.post(self.url, json=body, headers=auth())
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def sync_now(self, **params: str) -> httpx.Response:
        return await self.client.post(f"{self.url}/sync-now", params=params, headers=auth())

    async def config(self) -> dict[str, Any]:
        response = await self.client.get(self.url, headers=auth())
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def repositories(self, **params: str) -> list[dict[str, Any]]:
        params.setdefault("limit", "500")
        response = await self.client.get(f"{self.url}/repositories", params=params, headers=auth())
        assert response.status_code == 200, response.text
        return list(response.json()["repositories"])

    async def wait_terminal(self, seconds: float = 60.0) -> dict[str, Any]:
        """Poll GET like a CI job after sync-now: sync-now made the status SYNC_NOW, so the
        first terminal status seen is this run's outcome."""
        deadline = time.monotonic() + seconds
        while True:
            config = await self.config()
            if config["sync_status"] in TERMINAL_STATUSES:
                return config
            if time.monotonic() > deadline:
                raise AssertionError(f"no terminal status within {seconds}s: {config}")
            await asyncio.sleep(0.1)

    async def wait_for(self, check: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        while not await check():
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            await asyncio.sleep(0.05)


@pytest.fixture(scope="session")
async def worker_pg_engine(pg_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(pg_url(pg_database))
    yield engine
    await engine.dispose()


@pytest.fixture(params=["postgresql"])
def db(request: pytest.FixtureRequest) -> str:
    """The database backend; tests opt into SQLite with ``indirect`` parametrization."""
    return str(request.param)


@pytest.fixture
async def database_url(
    db: str, worker_pg_engine: AsyncEngine, sqlite_template: Path, tmp_path: Path
) -> str:
    if db == "sqlite":
        path = tmp_path / "worker.db"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"
    async with worker_pg_engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    return str(worker_pg_engine.url.render_as_string(hide_password=False))


@pytest.fixture
async def source(registry_factory: Callable[..., RegistryServer]) -> RegistryServer:
    return registry_factory()


@contextlib.asynccontextmanager
async def open_mirror_env(
    settings: Settings, source: RegistryServer, target: RegistryServer
) -> AsyncIterator[MirrorEnv]:
    """API client + Runtime on ``settings``, with org ``myorg`` and its robot created."""
    engine = create_engine(settings.effective_database_url)
    runtime = Runtime.assemble(settings, engine, create_sessionmaker(engine))
    transport = httpx.ASGITransport(app=create_app(runtime=runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        env = MirrorEnv(settings, runtime, client, source, target)
        org = await client.post("/api/v1/organization/", json={"name": ORG}, headers=auth())
        assert org.status_code == 201, org.text
        robot = await client.put(
            f"/api/v1/organization/{ORG}/robots/{ROBOT}",
            json={"token": ROBOT_PASSWORD},
            headers=auth(),
        )
        assert robot.status_code == 201, robot.text
        try:
            yield env
        finally:
            await env.stop_workers()
            await runtime.close()


def worker_settings(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    """Fast leases and polls, so takeovers and fallbacks happen within a test's patience."""
    values: dict[str, Any] = {
        "worker_poll_interval": 0.5,
        "lease_seconds": 5,
        "worker_concurrency": 4,
        **overrides,
    }
    return make_settings(database_url, tmp_path, **values)


@pytest.fixture
async def mirror_env(
    database_url: str,
    source: RegistryServer,
    auth_registry: RegistryServer,
    tmp_path: Path,
) -> AsyncIterator[MirrorEnv]:
    settings = worker_settings(
        database_url, tmp_path, target_registry=f"http://{auth_registry.host}"
    )
    async with open_mirror_env(settings, source, auth_registry) as env:
        yield env
