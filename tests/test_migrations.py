"""The migrations run both ways on PostgreSQL and SQLite, and match the models exactly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from app import migrations
from app.db import Base, create_engine
from tests.conftest import create_pg_database, drop_pg_database, pg_url

TABLES = {
    "organizations",
    "org_admins",
    "robot_accounts",
    "org_mirror_configs",
    "mirror_repositories",
    "mirrored_tags",
    "audit_events",
}


@pytest.fixture(params=["postgresql", "sqlite"])
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
        return
    name = await create_pg_database()
    try:
        yield pg_url(name)
    finally:
        await drop_pg_database(name)


async def _inspect(url: str) -> tuple[set[str], list[Any]]:
    def work(connection: Connection) -> tuple[set[str], list[Any]]:
        tables = set(inspect(connection).get_table_names())
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return tables, list(compare_metadata(context, Base.metadata))

    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(work)
    finally:
        await engine.dispose()


async def test_upgrade_matches_models_and_downgrade_removes_everything(empty_database: str) -> None:
    await asyncio.to_thread(migrations.upgrade, empty_database)
    tables, diff = await _inspect(empty_database)
    assert tables >= TABLES
    assert diff == [], f"models and migrations drifted: {diff}"
    current, head = await migrations.current_revision(empty_database)
    assert current == head is not None

    await asyncio.to_thread(migrations.downgrade, empty_database)
    tables, _ = await _inspect(empty_database)
    assert tables & TABLES == set()

    await asyncio.to_thread(migrations.upgrade, empty_database)
    tables, diff = await _inspect(empty_database)
    assert tables >= TABLES
    assert diff == []


def test_alembic_ini_is_found_outside_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The container image installs the package as a wheel and points at the migrations."""
    monkeypatch.setattr(migrations, "ROOT", tmp_path / "site-packages")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORGMIRROR_ALEMBIC_INI", raising=False)
    with pytest.raises(RuntimeError, match="ORGMIRROR_ALEMBIC_INI"):
        migrations.alembic_ini()
    real = Path(__file__).resolve().parent.parent / "alembic.ini"
    monkeypatch.setenv("ORGMIRROR_ALEMBIC_INI", str(real))
    assert migrations.alembic_ini() == real
    assert migrations.head_revision() is not None
