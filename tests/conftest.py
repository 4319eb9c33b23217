"""Shared fixtures: real PostgreSQL (a fresh database per run) and the embedded SQLite default.

Every API test runs on both backends (the ``backend`` parameter). PostgreSQL tests run inside
an outer transaction that is rolled back; SQLite tests get a copy of a migrated template file.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from jose import jwt
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app import migrations
from app.config import Settings
from app.db import create_engine
from app.main import create_app
from app.runtime import Runtime

pytest_plugins = ["tests.support.fixtures"]

PG_ADMIN_DSN = os.environ.get(
    "ORGMIRROR_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
JWT_SECRET = "test-secret-" + "x" * 32
ENCRYPTION_KEY = base64.urlsafe_b64encode(b"k" * 32).decode()
SUPERUSER = "root"


def pg_url(database: str) -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


async def create_pg_database() -> str:
    name = f"orgmirror_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_pg_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def make_settings(url: str, tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "data_dir": tmp,
        "jwt_secret": SecretStr(JWT_SECRET),
        "encryption_key": SecretStr(ENCRYPTION_KEY),
        "superusers": [SUPERUSER],
        "ssrf_allowed_hosts": ["127.0.0.1"],
        "target_registry": "127.0.0.1:1",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
async def pg_database() -> AsyncIterator[str]:
    name = await create_pg_database()
    await asyncio.to_thread(migrations.upgrade, pg_url(name))
    yield name
    await drop_pg_database(name)


@pytest.fixture(scope="session")
async def pg_engine(pg_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(pg_url(pg_database))
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    await asyncio.to_thread(migrations.upgrade, f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(params=["postgresql", "sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _runtime(
    settings: Settings, engine: AsyncEngine, maker: async_sessionmaker[AsyncSession]
) -> Runtime:
    return Runtime.assemble(settings, engine, maker)


@pytest.fixture
async def runtime(
    backend: str, pg_engine: AsyncEngine, sqlite_template: Path, tmp_path: Path
) -> AsyncIterator[Runtime]:
    """A Runtime on a clean database of the chosen backend."""
    if backend == "postgresql":
        engine = pg_engine
        async with engine.connect() as connection:
            outer = await connection.begin()
            maker = async_sessionmaker(
                bind=connection,
                expire_on_commit=False,
                autoflush=False,
                join_transaction_mode="create_savepoint",
            )
            settings = make_settings(str(engine.url), tmp_path)
            built = _runtime(settings, engine, maker)
            yield built
            await built.http.aclose()
            await outer.rollback()
        return
    path = tmp_path / "orgmirror.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(url)
    settings = make_settings(url, tmp_path)
    built = _runtime(settings, engine, async_sessionmaker(engine, expire_on_commit=False))
    yield built
    await built.close()


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime=runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


TokenFactory = Callable[..., str]


def make_token(
    sub: str = "alice",
    *,
    scope: str = "org:admin",
    lifetime: int = 3600,
    secret: str = JWT_SECRET,
    algorithm: str = "HS256",
    **claims: Any,
) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"sub": sub, "scope": scope, "iat": now, "exp": now + lifetime}
    payload.update(claims)
    return jwt.encode(payload, secret, algorithm=algorithm)


def auth(sub: str = "alice", **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(sub, **kwargs)}"}


@pytest.fixture
async def org(client: httpx.AsyncClient) -> str:
    """Organization ``myorg`` administered by alice, with robot ``myorg+mirrorbot``."""
    response = await client.post("/api/v1/organization/", json={"name": "myorg"}, headers=auth())
    assert response.status_code == 201, response.text
    response = await client.put(
        "/api/v1/organization/myorg/robots/mirrorbot",
        json={"description": "pushes", "token": "robot-token-value"},
        headers=auth(),
    )
    assert response.status_code == 201, response.text
    return "myorg"


def config_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "external_registry_type": "harbor",
        "external_registry_url": "http://127.0.0.1:8443",
        "external_namespace": "my-project",
        "robot_username": "myorg+mirrorbot",
        "visibility": "private",
        "sync_interval": 3600,
        "sync_start_date": "2030-01-01T00:00:00Z",
    }
    body.update(overrides)
    return body


@pytest.fixture
def mirror_url(org: str) -> str:
    return f"/api/v1/organization/{org}/mirror"


@pytest.fixture
async def config(client: httpx.AsyncClient, mirror_url: str) -> dict[str, Any]:
    response = await client.post(mirror_url, json=config_body(), headers=auth())
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body
