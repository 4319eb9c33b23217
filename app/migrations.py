"""Run Alembic programmatically (``orgmirror migrate``, embedded ``serve``, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from alembic import command
from app.db import create_engine

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str) -> Config:
    ini = ROOT / "alembic.ini"
    if not ini.exists():
        raise RuntimeError(
            f"alembic.ini not found at {ini}: run orgmirror from its source checkout "
            "(pip install -e .) or the container image"
        )
    config = Config(str(ini))
    config.attributes["url"] = url
    config.attributes["configure_logging"] = False
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    """The newest migration the code knows (read from the scripts, no database needed)."""
    config = Config(str(ROOT / "alembic.ini"))
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
