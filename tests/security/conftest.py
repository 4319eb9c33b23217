"""Fixtures for the security suite: clients whose SSRF rules differ, fake DNS, the worker env.

The API tests share one database between a permissive app (loopback allowed, as an operator
who mirrors from a local registry would configure it) and a strict one (nothing allowed), so
a config stored under one set of rules can be exercised under the other, as happens when an
operator tightens ``ORGMIRROR_SSRF_ALLOWED_HOSTS`` or a name starts resolving elsewhere.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.main import create_app
from app.runtime import Runtime
from tests.workers import conftest as workers

# The worker suite's real-registry environment, reused (its database_url is replaced below).
db = workers.db
mirror_env = workers.mirror_env
source = workers.source
worker_pg_engine = workers.worker_pg_engine

GENERIC = "The provided registry URL is not allowed"
# Loopback in every spelling the strict app is tested with, plus the fake names below.
OPEN_ALLOW_LIST = ["127.0.0.0/8", "::1", "0.0.0.0", "rebind.test", "mapped.test", "localhost"]


@pytest.fixture
async def database_url(
    db: str, worker_pg_engine: AsyncEngine, sqlite_template: Path, tmp_path: Path
) -> AsyncIterator[str]:
    """The worker suite's database, emptied afterwards too: these tests commit, and the API
    tests that run after them (here and in tests/test_*.py) expect a database without rows."""
    if db == "sqlite":
        path = tmp_path / "worker.db"
        shutil.copyfile(sqlite_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    truncate = text(f"TRUNCATE {workers.TABLES} RESTART IDENTITY CASCADE")
    async with worker_pg_engine.begin() as connection:
        await connection.execute(truncate)
    yield str(worker_pg_engine.url.render_as_string(hide_password=False))
    async with worker_pg_engine.begin() as connection:
        await connection.execute(truncate)


class FakeDns:
    """Answers for chosen names, changeable at any time (a DNS rebinding); ``lookups`` lists
    every name asked for, in order."""

    def __init__(self) -> None:
        self.table: dict[str, list[str]] = {}
        self.lookups: list[str] = []

    def answer(self, name: str, *addresses: str) -> None:
        self.table[name] = list(addresses)

    def resolve(self, name: str) -> list[str] | None:
        self.lookups.append(name)
        return self.table.get(name)


def _addrinfo(address: str, port: Any) -> tuple[Any, ...]:
    number = int(port or 0)
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, number, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, number))


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    """Fake answers for the names a test sets; every other name goes to the real resolver.
    There is no DNS server here, and socket.getaddrinfo is what the event loop (so the SSRF
    guard and httpx alike) calls."""
    real = socket.getaddrinfo
    dns = FakeDns()

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else str(host)
        addresses = dns.resolve(name.removesuffix("."))
        if addresses is None:
            return real(host, port, *args, **kwargs)
        return [_addrinfo(address, port) for address in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return dns


async def _client_for(runtime: Runtime) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(runtime=runtime))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def with_allow_list(runtime: Runtime, hosts: list[str]) -> Runtime:
    """The same database and secrets, other SSRF rules (its http clients must be closed)."""
    settings = runtime.settings.model_copy(update={"ssrf_allowed_hosts": hosts})
    return Runtime.assemble(settings, runtime.engine, runtime.sessionmaker)


@pytest.fixture
async def strict_client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The API with ``ORGMIRROR_SSRF_ALLOWED_HOSTS`` empty (the production default)."""
    strict = with_allow_list(runtime, [])
    async with await _client_for(strict) as http:
        yield http
    await strict.http.aclose()


@pytest.fixture
async def open_client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The API with loopback allowed in every spelling (what the stored configs were made with)."""
    opened = with_allow_list(runtime, OPEN_ALLOW_LIST)
    async with await _client_for(opened) as http:
        yield http
    await opened.http.aclose()
