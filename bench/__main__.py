"""``python -m bench``: seed, mirror with every tool, load the API, discover; write results.

.venv/bin/python -m bench                  # full run (100 repositories x 10 tags)
.venv/bin/python -m bench --quick          # smoke size, ≈ 1 minute; reports, never asserts
.venv/bin/python -m bench --repos 20 --tags 5 --only mirror --tools orgmirror,sync-yaml
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import signal
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import machine, report
from bench.api_load import run_api_benchmark
from bench.discovery import run_discovery_benchmark
from bench.mirror_bench import fast_tmp, run_mirror_benchmarks
from bench.settings import ALL_TOOLS, DEFAULT_TOOLS, BenchConfig, quick_config

log = logging.getLogger("bench")
SECTIONS = ("mirror", "api", "discovery")


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--repos", type=int, help="source repositories (default 100)")
    parser.add_argument("--tags", type=int, help="tags per repository (default 10)")
    parser.add_argument("--quick", action="store_true", help="smoke size (≈ 1 minute)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/latest.json"))
    parser.add_argument("--markdown", type=Path, default=Path("bench/RESULTS.md"))
    parser.add_argument("--parallel", type=int, help="parallelism budget (default 4)")
    parser.add_argument(
        "--tools",
        help=f"'all' or a comma-separated subset of: {', '.join(ALL_TOOLS)} "
        f"(default: {', '.join(DEFAULT_TOOLS)})",
    )
    parser.add_argument("--only", help=f"comma-separated subset of sections: {', '.join(SECTIONS)}")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (worker logs, configs)"
    )
    parser.add_argument(
        "--profile", type=Path, help="record orgmirror's worker with py-spy into this directory"
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for orgmirror's workers, e.g. ORGMIRROR_TAG_CONCURRENCY=8",
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="measure nothing: write --markdown from an earlier results file (e.g. after "
        "editing bench/FINDINGS.md)",
    )
    args = parser.parse_args(argv)
    cfg = quick_config() if args.quick else BenchConfig()
    updates: dict[str, Any] = {"out": args.out, "markdown": args.markdown, "keep": args.keep}
    updates["render"] = args.render
    updates["profile_dir"] = args.profile
    updates["worker_env"] = tuple(_pair(item) for item in args.worker_env)
    if args.repos:
        updates["repos"] = args.repos
    if args.tags:
        updates["tags"] = args.tags
    if args.parallel:
        updates["parallel"] = args.parallel
    if args.tools:
        tools = ",".join(ALL_TOOLS) if args.tools == "all" else args.tools
        updates["tools"] = _subset(tools, ALL_TOOLS, "--tools")
    if args.only:
        updates["sections"] = _subset(args.only, SECTIONS, "--only")
    return replace(cfg, **updates)


def _pair(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.startswith("ORGMIRROR_"):
        raise SystemExit(f"--worker-env: expected ORGMIRROR_NAME=VALUE, got {item!r}")
    return key, value


def _subset(value: str, allowed: tuple[str, ...], option: str) -> tuple[str, ...]:
    chosen = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = [c for c in chosen if c not in allowed]
    if unknown:
        raise SystemExit(f"{option}: unknown {', '.join(unknown)}; choose from {allowed}")
    return chosen


async def run(cfg: BenchConfig) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": await machine.describe(), "config": _config(cfg)}
    root = Path(tempfile.mkdtemp(prefix="orgmirror-bench-", dir=fast_tmp()))
    started = time.monotonic()
    try:
        if "mirror" in cfg.sections:
            results["mirror"] = await run_mirror_benchmarks(cfg, root / "mirror")
        if "api" in cfg.sections:
            results["api"] = await run_api_benchmark(cfg, root / "api")
        if "discovery" in cfg.sections:
            results["discovery"] = await run_discovery_benchmark(cfg)
    finally:
        if cfg.keep:
            log.info("work directory kept: %s", root)
        else:
            shutil.rmtree(root, ignore_errors=True)
    results["runtime_seconds"] = round(time.monotonic() - started, 1)
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in machine.load_average()]
    return results


def _config(cfg: BenchConfig) -> dict[str, Any]:
    return {
        "quick": cfg.quick,
        "repos": cfg.repos,
        "tags": cfg.tags,
        "parallel": cfg.parallel,
        "tools": list(cfg.tools),
        "sections": list(cfg.sections),
    }


async def _cancellable(work: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """SIGTERM cancels like Ctrl-C does, so registries, workers and databases are cleaned up."""
    task = asyncio.ensure_future(work)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await task


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    cfg = parse_args(argv)
    if cfg.render is not None:
        cfg.markdown.write_text(report.markdown(json.loads(cfg.render.read_text())))
        log.info("wrote %s from %s", cfg.markdown, cfg.render)
        return
    try:
        results = asyncio.run(_cancellable(run(cfg)))
    except (asyncio.CancelledError, KeyboardInterrupt):
        log.error("interrupted; registries, workers and databases were cleaned up")
        raise SystemExit(130) from None
    results["targets"] = report.targets(results)
    if "mirror" in results:
        results["mirror"]["ratios"] = report.ratios(results["mirror"])
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    cfg.out.write_text(json.dumps(results, indent=2) + "\n")
    cfg.markdown.write_text(report.markdown(results))
    for tool, rows in results["targets"].items():
        for row in rows:
            log.info("%s: %s — %s — %s", tool, row["target"], row["measured"], row["result"])
    log.info("results: %s and %s (%.0fs)", cfg.out, cfg.markdown, results["runtime_seconds"])


if __name__ == "__main__":
    main()
