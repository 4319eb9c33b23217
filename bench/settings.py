"""The benchmark's knobs: sizes, parallelism, which peers, where results go."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

PG_ADMIN_DSN = os.environ.get(
    "ORGMIRROR_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# Fixed, throw-away secrets: the bench's databases and processes live only for one run.
JWT_SECRET = "bench-secret-" + "x" * 32
ENCRYPTION_KEY = base64.urlsafe_b64encode(b"b" * 32).decode()
ORG = "myorg"
ROBOT = "mirrorbot"
ROBOT_TOKEN = "robot-secret"
ADMIN_USER = "benchadmin"
SOURCE_NAMESPACE = "src"

# The tools a default run measures, in order. The others run with --tools (all: about 12
# minutes instead of 9): sync per repository one at a time, and orgmirror with two worker
# processes sharing the same 4 skopeo slots.
DEFAULT_TOOLS = (
    "orgmirror",
    "copy-per-tag-seq",
    "copy-per-tag-par",
    "sync-per-repo-par",
    "sync-yaml",
)
ALL_TOOLS = (
    "orgmirror",
    "orgmirror-2workers",
    "copy-per-tag-seq",
    "copy-per-tag-par",
    "sync-per-repo-seq",
    "sync-per-repo-par",
    "sync-yaml",
)


@dataclass(frozen=True)
class BenchConfig:
    repos: int = 100
    tags: int = 10
    index_every: int = 5  # every 5th tag of a repository is a two-platform OCI index
    layers: int = 2
    layer_size: int = 4096
    change_fraction: float = 0.10
    parallel: int = 4  # the parallelism budget of every parallel peer and of orgmirror
    tools: tuple[str, ...] = DEFAULT_TOOLS
    api_rows: int = 10_000
    api_concurrency: int = 8
    api_requests: int = 2000
    api_seconds: int = 5
    discovery_repos: int = 10_000
    quick: bool = False
    quiet_wait: float = 30.0  # at most this long before each scenario for others' CPU to calm
    keep: bool = False
    profile_dir: Path | None = None
    render: Path | None = None  # only re-render the markdown from this results file
    worker_env: tuple[tuple[str, str], ...] = ()  # extra ORGMIRROR_* for every orgmirror worker
    out: Path = Path("bench/results/latest.json")
    markdown: Path = Path("bench/RESULTS.md")
    sections: tuple[str, ...] = ("mirror", "api", "discovery")

    @property
    def total_tags(self) -> int:
        return self.repos * self.tags


def quick_config(**overrides: object) -> BenchConfig:
    """A smoke-size run (≈ 1 minute): every code path, small numbers, timings not meaningful."""
    values: dict[str, object] = {
        "repos": 6,
        "tags": 4,
        "index_every": 4,
        "api_rows": 1000,
        "api_requests": 200,
        "api_seconds": 2,
        "discovery_repos": 1000,
        "quick": True,
        "quiet_wait": 0.0,
    }
    values.update(overrides)
    return BenchConfig(**values)  # type: ignore[arg-type]
