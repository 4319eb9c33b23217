"""(d) The API under load: a real ``orgmirror serve --no-worker`` (uvicorn, one process) on
PostgreSQL with N tracked repositories inserted in bulk, loaded by ApacheBench (``ab``, from
apache2-utils, already a test dependency) — a C client, so the load generator takes little of
the 2 cores the server needs. Keep-alive connections; latency percentiles from ab's CSV.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import logging
import random
import re
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, select, text

from app.db import utcnow
from app.models import MirrorRepository, OrgMirrorConfig
from app.statuses import SyncStatus
from bench.memory import vmhwm_kib
from bench.profiling import recording
from bench.service import (
    MIRROR_URL,
    admin_token,
    api_on,
    fresh_database,
    service_env,
    service_settings,
)
from bench.settings import BenchConfig
from tests.support.service import ORGMIRROR, free_port

log = logging.getLogger("bench.api")
WARMUP_REQUESTS = 50
START_TIMEOUT = 30.0
INSERT_CHUNK = 2000
STATUS_MIX = ((SyncStatus.SUCCESS, 0.92), (SyncStatus.FAIL, 0.04), (SyncStatus.SKIP, 0.04))


@dataclass
class LoadResult:
    name: str
    path: str
    concurrency: int
    requests: int
    failed: int
    non_2xx: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    body_bytes: int


def _row(config_id: int, index: int, rng: random.Random) -> dict[str, Any]:
    status = rng.choices([s for s, _ in STATUS_MIX], [w for _, w in STATUS_MIX])[0]
    now = utcnow()
    return {
        "config_id": config_id,
        "name": f"team{index % 50:02d}/app-{index:05d}",
        "sync_status": status,
        "discovery_date": now - timedelta(days=30),
        "last_sync_date": now - timedelta(minutes=rng.randint(1, 600)),
        "status_message": "2 of 10 tags failed: v3: manifest unknown" if status == "FAIL" else None,
        "in_target": status != SyncStatus.SKIP,
        "tags_total": 10,
        "tags_copied": rng.randint(0, 2),
        "tags_skipped": 8,
        "tags_failed": 2 if status == SyncStatus.FAIL else 0,
    }


async def insert_rows(database: str, rows: int) -> float:
    """Org, robot and config through the API; then ``rows`` tracking rows in bulk."""
    loop = asyncio.get_running_loop()
    async with api_on(database) as api:
        await api.create_org_and_robot()
        await api.create_config("http://127.0.0.1:1")
        started = loop.time()
        async with api.runtime.engine.begin() as connection:
            config_id = (await connection.execute(select(OrgMirrorConfig.id))).scalar_one()
            rng = random.Random(42)
            for start in range(0, rows, INSERT_CHUNK):
                chunk = range(start, min(rows, start + INSERT_CHUNK))
                await connection.execute(
                    insert(MirrorRepository), [_row(config_id, i, rng) for i in chunk]
                )
        async with api.runtime.engine.connect() as connection:
            # A long-running deployment has planner statistics; a fresh bulk load does not yet.
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("ANALYZE"))
        return loop.time() - started


def endpoints(rows: int) -> list[tuple[str, str]]:
    """(name, path) of the requests to load: GET config and listing pages, first to last."""
    last_100 = max(1, -(-rows // 100))
    last_500 = max(1, -(-rows // 500))
    listing = f"{MIRROR_URL}/repositories"
    return [
        ("GET config", MIRROR_URL),
        ("list limit=100 page=1", f"{listing}?limit=100&page=1"),
        (f"list limit=100 page={last_100 // 2}", f"{listing}?limit=100&page={last_100 // 2}"),
        (f"list limit=100 page={last_100}", f"{listing}?limit=100&page={last_100}"),
        ("list limit=500 page=1", f"{listing}?limit=500&page=1"),
        (f"list limit=500 page={last_500}", f"{listing}?limit=500&page={last_500}"),
        ("list status=FAIL limit=100", f"{listing}?status=FAIL&limit=100&page=1"),
    ]


def _number(pattern: str, output: str, default: float = 0.0) -> float:
    match = re.search(pattern, output, re.MULTILINE)
    return float(match.group(1)) if match else default


def _percentiles(path: Path) -> dict[int, float]:
    with path.open() as handle:
        reader = csv.reader(handle)
        next(reader, None)  # "Percentage served,Time in ms"
        return {int(float(row[0])): float(row[1]) for row in reader if len(row) == 2}


def run_ab(
    url: str, token: str, *, concurrency: int, requests: int, seconds: int, csv_path: Path
) -> str:
    """One ``ab`` run: stops after ``requests`` or ``seconds``, whichever comes first."""
    argv = ["ab", "-q", "-k", "-c", str(concurrency), "-t", str(seconds), "-n", str(requests)]
    argv += ["-H", f"Authorization: Bearer {token}", "-e", str(csv_path), url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ab failed ({done.returncode}): {done.stderr[-500:]}")
    return done.stdout


def load(
    name: str, url: str, token: str, concurrency: int, cfg: BenchConfig, workdir: Path
) -> LoadResult:
    run_ab(
        url,
        token,
        concurrency=min(4, concurrency),
        requests=WARMUP_REQUESTS,
        seconds=10,
        csv_path=workdir / "warmup.csv",
    )
    csv_path = workdir / "percentiles.csv"
    output = run_ab(
        url,
        token,
        concurrency=concurrency,
        requests=cfg.api_requests,
        seconds=cfg.api_seconds,
        csv_path=csv_path,
    )
    pct = _percentiles(csv_path)
    return LoadResult(
        name=name,
        path=url.split("/api/v1", 1)[-1],
        concurrency=concurrency,
        requests=int(_number(r"^Complete requests:\s+(\d+)", output)),
        failed=int(_number(r"^Failed requests:\s+(\d+)", output)),
        non_2xx=int(_number(r"^Non-2xx responses:\s+(\d+)", output)),
        rps=round(_number(r"^Requests per second:\s+([\d.]+)", output), 1),
        p50_ms=pct.get(50, 0.0),
        p90_ms=pct.get(90, 0.0),
        p99_ms=pct.get(99, 0.0),
        max_ms=pct.get(100, 0.0),
        body_bytes=int(_number(r"^Document Length:\s+(\d+)", output)),
    )


class ApiProcess:
    """``orgmirror serve`` on a free port, as a context manager (SIGTERM on exit)."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.argv = [*argv, "--port", str(self.port)]
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ApiProcess:
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(timeout=2.0) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.argv[:3]} exited: see {self.log_path}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{self.url}/openapi.json").status_code == 200:
                        return self
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.argv[:3]} did not answer within {START_TIMEOUT}s")
                time.sleep(0.05)

    def __exit__(self, *_: object) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)  # uvicorn's graceful shutdown
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def serve_and_load(database: str, cfg: BenchConfig, root: Path) -> dict[str, Any]:
    """Start the API process, load every endpoint, stop it (blocking: runs in a thread)."""
    root.mkdir(parents=True, exist_ok=True)
    # With ORGMIRROR_DATABASE_URL set, `serve` runs no worker: the API alone is measured.
    env = service_env(database, root, "127.0.0.1:1")
    results: list[LoadResult] = []
    with ApiProcess([str(ORGMIRROR), "serve"], env, root / "serve.log") as server:
        assert server.process is not None
        token = admin_token(service_settings(database))
        for number, (name, path) in enumerate(endpoints(cfg.api_rows), start=1):
            for concurrency in _concurrencies(name, cfg):
                profile = _profile_path(cfg, number, concurrency)
                with recording(server.process.pid, profile):
                    result = load(name, server.url + path, token, concurrency, cfg, root)
                log.info(
                    "%-28s c=%-2d %7.1f req/s  p50 %6.1f ms  p99 %6.1f ms  (%d requests)",
                    name,
                    concurrency,
                    result.rps,
                    result.p50_ms,
                    result.p99_ms,
                    result.requests,
                )
                results.append(result)
        hwm_kib = vmhwm_kib(server.process.pid)
    return {
        "server_rss_peak_mib": round(hwm_kib / 1024, 1),
        "results": [asdict(r) for r in results],
    }


async def run_api_benchmark(cfg: BenchConfig, root: Path) -> dict[str, Any]:
    async with fresh_database("api") as database:
        insert_seconds = await insert_rows(database, cfg.api_rows)
        log.info("inserted %d tracking rows in %.1fs", cfg.api_rows, insert_seconds)
        measured = await asyncio.to_thread(serve_and_load, database, cfg, root)
    return {
        "rows": cfg.api_rows,
        "insert_seconds": round(insert_seconds, 2),
        "server": "orgmirror serve (uvicorn, 1 process, no worker), PostgreSQL",
        "client": "ab -k (keep-alive)",
        **measured,
    }


def _profile_path(cfg: BenchConfig, number: int, concurrency: int) -> Path | None:
    if cfg.profile_dir is None:
        return None
    return cfg.profile_dir / f"api-{number}-c{concurrency}.txt"


def _concurrencies(name: str, cfg: BenchConfig) -> list[int]:
    """Every endpoint under load; the two commonest also alone (service time, no queueing)."""
    if name in ("GET config", "list limit=100 page=1"):
        return [1, cfg.api_concurrency]
    return [cfg.api_concurrency]
