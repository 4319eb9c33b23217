"""Everything a process builds once from its settings and hands down explicitly."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.registry.ssrf import SsrfGuard
from app.security import SecretBox, TokenVerifier


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    verifier: TokenVerifier
    box: SecretBox
    ssrf: SsrfGuard

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        engine = create_engine(settings.effective_database_url)
        if settings.encryption_key is None:
            raise ValueError("ORGMIRROR_ENCRYPTION_KEY is not set")
        return cls(
            settings=settings,
            engine=engine,
            sessionmaker=create_sessionmaker(engine),
            verifier=TokenVerifier(settings),
            box=SecretBox(settings.encryption_key.get_secret_value()),
            ssrf=SsrfGuard(settings.ssrf_allowed_hosts),
        )

    async def close(self) -> None:
        await self.engine.dispose()
