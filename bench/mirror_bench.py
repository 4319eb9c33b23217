"""Scenarios (a) to (c) for every tool: cold mirror into a wiped target, a no-change resync,
and a resync after 10 % of the tags changed. Every tool gets a new, empty target registry
and an empty skopeo blob-info cache; requests and writes to both registries are counted from
their access logs.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.cpu import CpuMeter
from bench.quiet import machine_busy_seconds, wait_quiet
from bench.settings import BenchConfig
from bench.tools import Orgmirror, Tool, load_average, make_tool, reset_blob_cache
from bench.workload import Workload
from tests.support.registry_server import RegistryServer

log = logging.getLogger("bench.mirror")
SCENARIOS = ("cold", "nochange", "changed")


@dataclass
class ScenarioResult:
    tool: str
    scenario: str
    seconds: float
    target_writes: int
    target_requests: int
    source_requests: int
    processes: int
    memory: dict[str, float | int]
    load_before: float
    background_cpu: float  # fraction of the machine busy with other work just before
    cpu_seconds: dict[str, float]  # per process: the tool, its skopeo children, registries
    # Machine CPU during the run not in cpu_seconds: PostgreSQL, this benchmark, other work.
    other_cpu_seconds: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToolResult:
    tool: str
    label: str
    parallelism: str
    scenarios: list[ScenarioResult]
    mismatches: list[str]
    memory: dict[str, Any]
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def fast_tmp() -> Path | None:
    """Registries keep their storage in tmpfs when there is one: fewer disk-latency outliers
    (the same for every tool)."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() else None


def new_registry(prefix: str) -> RegistryServer:
    return RegistryServer(Path(tempfile.mkdtemp(prefix=prefix, dir=fast_tmp()))).start()


def dispose(server: RegistryServer) -> None:
    """Stop the registry and remove its storage (a given workdir is left alone by stop())."""
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


async def _measure(
    tool: Tool, scenario: str, workload: Workload, target: RegistryServer
) -> ScenarioResult:
    source = workload.source
    reset_blob_cache()
    background = await wait_quiet(max_wait=workload.config.quiet_wait)
    load = load_average()
    source_mark, target_mark = source.mark(), target.mark()
    registries = {"source registry": source.pid, "target registry": target.pid}
    pids = {name: [pid] for name, pid in registries.items() if pid is not None}
    pids.update(tool.cpu_pids())
    meter = CpuMeter(pids, children_of_self=not isinstance(tool, Orgmirror)).start()
    busy = machine_busy_seconds()
    outcome = await tool.mirror()
    cpu = meter.stop()
    other = machine_busy_seconds() - busy - sum(cpu.values())
    target_log = target.requests(target_mark)
    result = ScenarioResult(
        tool=tool.name,
        scenario=scenario,
        seconds=round(outcome.seconds, 3),
        target_writes=sum(1 for e in target_log if e.method in {"POST", "PUT", "PATCH", "DELETE"}),
        target_requests=len(target_log),
        source_requests=len(source.requests(source_mark)),
        processes=outcome.processes,
        memory=outcome.memory.as_dict(),
        load_before=load,
        background_cpu=background,
        cpu_seconds=cpu,
        other_cpu_seconds=round(max(0.0, other), 1),
        details=outcome.details,
    )
    log.info(
        "%-18s %-9s %7.2fs  target writes=%d requests=%d  source requests=%d  processes=%d",
        tool.name,
        scenario,
        result.seconds,
        result.target_writes,
        result.target_requests,
        result.source_requests,
        result.processes,
    )
    return result


async def _scenarios(
    tool: Tool, workload: Workload, target: RegistryServer
) -> list[ScenarioResult]:
    results = []
    for scenario in SCENARIOS:
        if scenario == "changed":
            changed = await workload.change()
            log.info("changed %d tags in the source", changed)
        results.append(await _measure(tool, scenario, workload, target))
    if isinstance(tool, Orgmirror):
        # Every ORGMIRROR_TARGET_RECHECK_EVERY-th run (default 24) also HEADs the target
        # for every tag; measure that run too (a new worker that rechecks every run).
        await tool.restart_workers(ORGMIRROR_TARGET_RECHECK_EVERY="1")
        results.append(await _measure(tool, "recheck", workload, target))
    return results


async def bench_tool(name: str, workload: Workload, cfg: BenchConfig, root: Path) -> ToolResult:
    tool = make_tool(name, workload, root / name, cfg)
    target = new_registry(f"bench-target-{name}-")
    scenarios: list[ScenarioResult] = []
    error = None
    memory: dict[str, Any] = {}
    started = time.monotonic()
    try:
        await tool.start(target)
        scenarios = await _scenarios(tool, workload, target)
    except Exception as exc:  # a failing tool is reported, the others still run
        log.exception("%s failed", name)
        error = f"{type(exc).__name__}: {exc}"
    finally:
        try:
            memory = await tool.stop()
        finally:
            mismatches = await workload.mismatches(target) if error is None else []
            dispose(target)
    log.info("%s done in %.0fs", name, time.monotonic() - started)
    return ToolResult(name, tool.label, tool.parallelism, scenarios, mismatches, memory, error)


async def run_mirror_benchmarks(cfg: BenchConfig, root: Path) -> dict[str, Any]:
    source = new_registry("bench-source-")
    try:
        workload = Workload(cfg, source)
        seed_seconds = await workload.seed()
        log.info("seeded %d repositories x %d tags in %.1fs", cfg.repos, cfg.tags, seed_seconds)
        tools = [await bench_tool(name, workload, cfg, root) for name in cfg.tools]
    finally:
        dispose(source)
    return {
        "workload": {
            "repositories": cfg.repos,
            "tags_per_repository": cfg.tags,
            "tags_total": cfg.total_tags,
            "index_every": cfg.index_every,
            "layers": cfg.layers,
            "layer_size_bytes": cfg.layer_size,
            "changed_fraction": cfg.change_fraction,
            "seed_seconds": round(seed_seconds, 2),
        },
        "parallel": cfg.parallel,
        "tools": [tool.as_dict() for tool in tools],
    }
