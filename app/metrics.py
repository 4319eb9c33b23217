"""Prometheus metrics. Counters and histograms are per process (each worker can expose its own
with ``orgmirror worker --metrics-port``); the gauges derived from the database (statuses, last
success per org) are filled by the API at scrape time, so any API process reports them all.

Labels are bounded: statuses and results are fixed sets; ``org`` has one value per org.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

RUNS = Counter(
    "orgmirror_runs_finished", "Runs finished, by outcome.", ["status"], registry=REGISTRY
)
REPOSITORIES = Counter(
    "orgmirror_repositories_synced",
    "Repository syncs finished, by outcome.",
    ["status"],
    registry=REGISTRY,
)
TAGS = Counter(
    "orgmirror_tags",
    "Tags handled: copied, skipped (unchanged) or failed.",
    ["result"],
    registry=REGISTRY,
)
SKOPEO_SECONDS = Histogram(
    "orgmirror_skopeo_copy_seconds",
    "Duration of skopeo copy processes, by outcome.",
    ["outcome"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600),
    registry=REGISTRY,
)
RUN_SECONDS = Histogram(
    "orgmirror_run_duration_seconds",
    "Duration of runs from start to finish.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
    registry=REGISTRY,
)
CONFIGS = Gauge(
    "orgmirror_configs", "Mirror configs by sync status.", ["status"], registry=REGISTRY
)
TRACKED = Gauge(
    "orgmirror_repositories",
    "Tracked repositories by sync status.",
    ["status"],
    registry=REGISTRY,
)
LAST_SUCCESS = Gauge(
    "orgmirror_last_success_timestamp_seconds",
    "When the latest successful run of an organization's mirror finished (Unix time).",
    ["org"],
    registry=REGISTRY,
)
