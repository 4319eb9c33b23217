"""Run Alembic programmatically (``orgmirror migrate``, embedded ``serve``, tests)."""

from __future__ import annotations

import os
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from alembic import command
from app.db import create_engine

ROOT = Path(__file__).resolve().parent.parent


def alembic_ini() -> Path:
    """Where the migrations are: ``ORGMIRROR_ALEMBIC_INI``, the source checkout, or the
    working directory (the container image sets the variable)."""
    candidates = [Path(p) for p in (os.environ.get("ORGMIRROR_ALEMBIC_INI"),) if p]
    candidates += [ROOT / "alembic.ini", Path.cwd() / "alembic.ini"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise RuntimeError(
        "alembic.ini not found (looked at "
        + ", ".join(str(c) for c in candidates)
        + "): run orgmirror from its source checkout, or set ORGMIRROR_ALEMBIC_INI"
    )


def alembic_config(url: str) -> Config:
    config = Config(str(alembic_ini()))
    config.attributes["url"] = url
    config.attributes["configure_logging"] = False
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    """The newest migration the code knows (read from the scripts, no database needed)."""
    config = Config(str(alembic_ini()))
    return ScriptDirectory.from_config(config).get_current_head()


async def current_revision(url: str) -> tuple[str | None, str | None]:
    """(the database's revision, the code's head)."""
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()

    def _current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            current = await connection.run_sync(_current)
    finally:
        await engine.dispose()
    return current, head
