"""/healthz, /readyz and /metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from app.db import create_engine, create_sessionmaker
from app.main import create_app
from app.models import OrgMirrorConfig
from app.runtime import Runtime
from tests.conftest import make_settings


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_on_a_migrated_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready"
    assert response.json()["migrations"].startswith("current")


async def test_readyz_says_to_migrate_an_empty_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    engine = create_engine(url)
    runtime = Runtime.assemble(make_settings(url, tmp_path), engine, create_sessionmaker(engine))
    transport = httpx.ASGITransport(app=create_app(runtime=runtime))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/readyz")
    finally:
        await runtime.close()
    assert response.status_code == 503
    assert response.json()["title"] == "not_ready"
    assert "run orgmirror migrate" in response.json()["detail"]


async def test_metrics_expose_counters_and_database_gauges(
    client: httpx.AsyncClient, runtime: Runtime, config: dict[str, Any]
) -> None:
    finished = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    async with runtime.sessionmaker() as session:
        await session.execute(update(OrgMirrorConfig).values(last_success_at=finished))
        await session.commit()
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in (
        "orgmirror_runs_finished_total",
        "orgmirror_tags_total",
        "orgmirror_skopeo_copy_seconds_bucket",
        "orgmirror_run_duration_seconds_bucket",
    ):
        assert name in text or f"# TYPE {name.rsplit('_', 1)[0]}" in text, name
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("orgmirror_configs", (("status", "NEVER_RUN"),))] == 1
    assert samples[("orgmirror_repositories", (("status", "SKIP"),))] == 0
    last = samples[("orgmirror_last_success_timestamp_seconds", (("org", "myorg"),))]
    assert last == finished.timestamp()
