"""Everything a process builds once from its settings and hands down explicitly."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app import migrations
from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.registry.client import RegistryClient
from app.registry.http import HttpClients
from app.registry.ssrf import SsrfGuard
from app.security import SecretBox, TokenVerifier
from app.workers.wakeup import Wakeup


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    verifier: TokenVerifier
    box: SecretBox
    ssrf: SsrfGuard
    http: HttpClients
    registry: RegistryClient
    wakeup: Wakeup
    schema_head: str | None = None

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        engine = create_engine(settings.effective_database_url)
        return cls.assemble(settings, engine, create_sessionmaker(engine))

    @classmethod
    def assemble(
        cls,
        settings: Settings,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> Runtime:
        """Everything else built around a given engine and session factory."""
        if settings.encryption_key is None:
            raise ValueError("ORGMIRROR_ENCRYPTION_KEY is not set")
        ssrf = SsrfGuard(settings.ssrf_allowed_hosts)
        http = HttpClients()
        return cls(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            verifier=TokenVerifier(settings),
            box=SecretBox(settings.encryption_key.get_secret_value()),
            ssrf=ssrf,
            http=http,
            registry=RegistryClient(http, ssrf=ssrf),
            wakeup=Wakeup(),
            schema_head=migrations.head_revision(),
        )

    async def close(self) -> None:
        await self.http.aclose()
        await self.engine.dispose()
