"""Targets, ratios and the markdown report (bench/RESULTS.md) from a results dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

FINDINGS = Path(__file__).with_name("FINDINGS.md")
SCENARIO_TITLES = {
    "cold": "cold mirror",
    "nochange": "no-change resync",
    "changed": "10 % changed",
    "recheck": "no-change + target recheck",
}
COPY_PEERS = ("copy-per-tag-seq", "copy-per-tag-par")
SYNC_PEERS = ("sync-per-repo-seq", "sync-per-repo-par", "sync-yaml")
# orgmirror in another deployment shape: not a peer.
VARIANTS = ("orgmirror-2workers",)


def _seconds(tools: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    return {
        tool["tool"]: {s["scenario"]: s["seconds"] for s in tool["scenarios"]}
        for tool in tools
        if not tool.get("error")
    }


def _ratio(peer: float | None, ours: float | None) -> float | None:
    if peer is None or not ours:
        return None
    return round(peer / ours, 2)


def _peers(times: dict[str, dict[str, float]]) -> tuple[str, ...]:
    return tuple(n for n in times if n != "orgmirror" and n not in VARIANTS)


def ratios(mirror: dict[str, Any], ours: str = "orgmirror") -> dict[str, dict[str, float | None]]:
    """peer seconds ÷ ``ours`` seconds per scenario (> 1: ours is faster)."""
    times = _seconds(mirror["tools"])
    mine = times.get(ours, {})
    return {
        name: {s: _ratio(times[name].get(s), mine.get(s)) for s in ("cold", "nochange", "changed")}
        for name in _peers(times)
    }


def _fastest(times: dict[str, dict[str, float]], names: tuple[str, ...], scenario: str) -> Any:
    present = [(times[n][scenario], n) for n in names if n in times and scenario in times[n]]
    return min(present) if present else (None, None)


def _target(name: str, measured: str, passed: bool | None) -> dict[str, Any]:
    verdict = "not measured" if passed is None else ("met" if passed else "MISSED")
    return {"target": name, "measured": measured, "result": verdict}


def _faster_than(
    times: dict[str, dict[str, float]],
    ours: str,
    peers: tuple[str, ...],
    scenario: str,
    factor: float,
    title: str,
) -> dict[str, Any]:
    """``ours`` must be ``factor`` times faster than the fastest of ``peers`` in ``scenario``."""
    mine = times.get(ours, {}).get(scenario)
    peer, name = _fastest(times, peers, scenario)
    ratio = _ratio(peer, mine)
    measured = "—" if ratio is None else f"{ratio}x vs {name} ({peer:.2f}s vs {mine:.2f}s)"
    return _target(title, measured, None if ratio is None else ratio >= factor)


def targets_for(mirror: dict[str, Any], ours: str) -> list[dict[str, Any]]:
    """The issue's targets, evaluated for ``ours`` (orgmirror or a variant of it)."""
    times = _seconds(mirror["tools"])
    tool = next((t for t in mirror["tools"] if t["tool"] == ours), None)
    rows = [
        _faster_than(
            times,
            ours,
            ("copy-per-tag-seq",),
            "nochange",
            10,
            "no-change ≥ 10x faster than per-tag `skopeo copy` (Quay's method)",
        )
    ]
    if "copy-per-tag-par" in times:
        rows.append(
            _faster_than(
                times,
                ours,
                COPY_PEERS,
                "nochange",
                10,
                "(stricter) no-change ≥ 10x faster than the faster per-tag copy",
            )
        )
    rows.append(
        _faster_than(
            times,
            ours,
            SYNC_PEERS,
            "nochange",
            3,
            "no-change ≥ 3x faster than `skopeo sync` (its fastest variant)",
        )
    )
    writes = _scenario(tool, "nochange", "target_writes")
    rows.append(
        _target(
            "no-change resync writes nothing to the target",
            "—" if writes is None else f"{writes} writes",
            None if writes is None else writes == 0,
        )
    )
    rows.append(
        _faster_than(
            times,
            ours,
            _peers(times),
            "cold",
            1.0,
            "cold mirror no slower than the fastest peer",
        )
    )
    memory = (tool or {}).get("memory") or {}
    rows.append(
        _target(
            "peak worker memory reported",
            f"worker {memory.get('worker_vmhwm_mib', '—')} MiB (VmHWM); with skopeo "
            f"children {memory.get('worker_plus_children_peak_mib', '—')} MiB",
            bool(memory) if tool else None,
        )
    )
    return rows


def targets(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Targets per orgmirror flavour measured (the default deployment, and variants)."""
    mirror = results.get("mirror")
    if not mirror:
        return {}
    measured = {t["tool"] for t in mirror["tools"] if not t.get("error")}
    judged = {
        name: targets_for(mirror, name) for name in ("orgmirror", *VARIANTS) if name in measured
    }
    if results.get("config", {}).get("quick"):
        # Smoke size: fixed start-up costs dominate, so the targets say nothing here.
        for rows in judged.values():
            for row in rows:
                row["result"] = "not judged (--quick)"
    return judged


def _scenario(tool: dict[str, Any] | None, scenario: str, key: str) -> Any:
    for entry in (tool or {}).get("scenarios", []):
        if entry["scenario"] == scenario:
            return entry[key]
    return None


# --- markdown ---------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _fmt(value: float | None, suffix: str = "") -> str:
    return "—" if value is None else f"{value:.2f}{suffix}"


def _machine(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    return [
        f"- Date: {m['date']}; this run took {results.get('runtime_seconds', 0):.0f} s"
        f"{' (--quick: smoke size, timings not meaningful)' if results['config']['quick'] else ''}",
        f"- Machine: {m['nproc']} CPU ({m['cpu_model']}), {m['memory_gib']} GiB RAM, {m['os']},"
        f" kernel {m['kernel']}, Python {m['python']}",
        f"- {m['skopeo']}; registry {m['registry']}; PostgreSQL {m['postgresql']}; {m['ab']}",
        f"- Load average at start {m['load_average_at_start']}, at end "
        f"{m.get('load_average_at_end', '—')} (other work on the machine shows up here)",
    ]


def _mirror_section(mirror: dict[str, Any]) -> list[str]:
    w = mirror["workload"]
    lines = [
        "## (a) to (c) Mirroring: wall seconds (lower is better)",
        "",
        f"Source: {w['repositories']} repositories x {w['tags_per_repository']} tags = "
        f"{w['tags_total']} tags; every {w['index_every']}th tag a two-platform OCI index, the "
        f"others Docker images of {w['layers']} random {w['layer_size_bytes'] // 1024} KiB "
        "layers. Source and targets: distribution 2.8 on loopback, plain HTTP, storage in tmpfs. "
        "Every tool gets a new empty target and an empty skopeo blob-info cache before each "
        "scenario; `--all --preserve-digests` everywhere. orgmirror is timed from sync-now to the "
        "GET that shows SUCCESS (discovery included); peers get the repository list for free. "
        f"Between the no-change and the changed run {int(w['changed_fraction'] * 100)} % of the "
        "(repository, tag) pairs get a new image (one tag per repository).",
        "",
    ]
    rows = []
    for tool in mirror["tools"]:
        by = {s["scenario"]: s for s in tool["scenarios"]}
        nochange = by.get("nochange", {})
        if tool.get("error"):
            rows.append([tool["label"], tool["parallelism"], f"error: {tool['error'][:80]}"])
            continue
        rows.append(
            [
                f"**{tool['label']}**" if tool["tool"] == "orgmirror" else tool["label"],
                tool["parallelism"],
                _fmt(by.get("cold", {}).get("seconds")),
                _fmt(nochange.get("seconds")),
                _fmt(by.get("changed", {}).get("seconds")),
                _fmt(by.get("recheck", {}).get("seconds")) if "recheck" in by else "—",
                str(nochange.get("target_writes", "—")),
                "/".join(str(by.get(s, {}).get("processes", "—")) for s in SCENARIO_TITLES)
                if "recheck" in by
                else "/".join(str(by.get(s, {}).get("processes", "—")) for s in list(by)),
                "ok" if not tool["mismatches"] else f"{len(tool['mismatches'])} wrong",
            ]
        )
    header = ["tool", "parallelism", "cold", "no-change", "10 % changed", "recheck run"]
    header += ["writes (no-change)", "skopeo processes (per run)", "target = source"]
    lines += _table(header, rows)
    lines += [
        "",
        "“recheck run”: orgmirror's every-24th run (`ORGMIRROR_TARGET_RECHECK_EVERY`) that also "
        "HEADs every tag in the target; no peer has an equivalent. “target = source”: every "
        "tag's digest in the target equals the source's after the last run.",
        "",
        "### Ratios: peer seconds ÷ orgmirror seconds (> 1: orgmirror is faster)",
        "",
        *_ratio_table(mirror),
        "",
        "### Requests, CPU and memory",
        "",
    ]
    lines += _requests_table(mirror)
    return lines


def _ratio_table(mirror: dict[str, Any]) -> list[str]:
    measured = {t["tool"] for t in mirror["tools"] if not t.get("error")}
    flavours = [name for name in ("orgmirror", *VARIANTS) if name in measured]
    per_flavour = {name: ratios(mirror, name) for name in flavours}
    peers = list(per_flavour[flavours[0]]) if flavours else []
    header = ["peer"]
    for name in flavours:
        header += [f"{name}: cold", "no-change", "10 % changed"]
    rows = []
    for peer in peers:
        row = [peer]
        for name in flavours:
            r = per_flavour[name][peer]
            row += [_fmt(r[s], "x") for s in ("cold", "nochange", "changed")]
        rows.append(row)
    return _table(header, rows)


def _requests_table(mirror: dict[str, Any]) -> list[str]:
    rows = []
    for tool in mirror["tools"]:
        for s in tool["scenarios"]:
            mem = s["memory"]
            rows.append(
                [
                    tool["tool"],
                    SCENARIO_TITLES[s["scenario"]],
                    str(s["source_requests"]),
                    str(s["target_requests"]),
                    str(s["target_writes"]),
                    f"{mem.get('largest_child_rss_mib', 0)}",
                    f"{mem.get('worker_plus_children_peak_mib', 0)}",
                    _cpu(s.get("cpu_seconds", {})),
                    f"{s.get('other_cpu_seconds', 0):.1f}",
                ]
            )
    header = ["tool", "scenario", "source requests", "target requests", "target writes"]
    header += ["largest skopeo MiB", "peak RSS sum MiB"]
    header += ["CPU s: worker / skopeo / source reg. / target reg.", "other CPU s"]
    lines = _table(header, rows)
    lines += [
        "",
        "“CPU s” are CPU seconds each process used during the run (“skopeo”: the worker's or "
        "the peer's skopeo processes). “other CPU s”: machine CPU during the run used by none of "
        "them — PostgreSQL (part of orgmirror's cost), the benchmark process, and anyone else's "
        "work; a large value means the wall time was disturbed.",
    ]
    orgmirror = next((t for t in mirror["tools"] if t["tool"] == "orgmirror"), None)
    if orgmirror and orgmirror.get("memory"):
        m = orgmirror["memory"]
        lines += [
            "",
            f"orgmirror worker peak memory: **{m['worker_vmhwm_mib']} MiB** (VmHWM of the "
            f"`orgmirror worker` process); with its skopeo children at once: "
            f"**{m['worker_plus_children_peak_mib']} MiB** (sampled every 50 ms); largest "
            f"skopeo process {m['largest_skopeo_rss_mib']} MiB; at most "
            f"{m['max_concurrent_skopeo']} skopeo processes at once. “peak RSS sum” for peers "
            "is their concurrent skopeo processes.",
        ]
    return lines


def _cpu(spent: dict[str, float]) -> str:
    worker = spent.get("worker")
    skopeo = spent.get("worker children", spent.get("skopeo", 0.0))
    parts = ["—" if worker is None else f"{worker:.1f}", f"{skopeo:.1f}"]
    parts += [
        f"{spent.get('source registry', 0.0):.1f}",
        f"{spent.get('target registry', 0.0):.1f}",
    ]
    return " / ".join(parts)


def _api_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            r["name"],
            str(r["concurrency"]),
            f"{r['rps']:.0f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p90_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            str(r["requests"]),
            str(r["failed"] + r["non_2xx"]),
            f"{r['body_bytes']:,}",
        ]
        for r in results
    ]


def _api_section(api: dict[str, Any]) -> list[str]:
    lines = [
        f"## (d) API under load: {api['rows']:,} tracked repositories, PostgreSQL",
        "",
        f"{api['server']}; load from {api['client']} in a separate process; each row is at "
        "most the configured number of requests or seconds, after a 50-request warm-up. "
        f"Server peak RSS {api['server_rss_peak_mib']} MiB. “errors”: non-2xx answers or "
        "bodies whose length changed.",
        "",
    ]
    rows = _api_rows(api["results"])
    header = ["request", "connections", "req/s", "p50 ms", "p90 ms", "p99 ms"]
    header += ["requests", "errors", "body bytes"]
    return lines + _table(header, rows)


def _discovery_section(d: dict[str, Any]) -> list[str]:
    rows = [
        ["source listing only (`/v2/_catalog`, 1,000 a page)", f"{d['list_only_seconds']:.2f}"],
        [
            f"first discovery: list + insert {d['first_discovery_tracked']:,} rows",
            f"{d['first_discovery_seconds']:.2f}",
        ],
        [
            f"rediscovery: list + update {d['rediscovery_tracked']:,} rows",
            f"{d['rediscovery_seconds']:.2f}",
        ],
    ]
    return [
        f"## (e) Discovery of a {d['repositories']:,}-repository namespace",
        "",
        f"A real registry whose catalog holds {d['catalog_entries']:,} repositories "
        f"({d['repositories']:,} under the namespace), seeded in {d['seed_seconds']} s. "
        f"Measured: {d['method']} on a fresh PostgreSQL database.",
        "",
        *_table(["phase", "seconds"], rows),
    ]


def _targets_section(by_tool: dict[str, list[dict[str, Any]]]) -> list[str]:
    names = list(by_tool)
    header = ["target"]
    for name in names:
        header += [f"{name}: measured", "result"]
    rows = []
    for index, first in enumerate(by_tool[names[0]]):
        row = [first["target"]]
        for name in names:
            entry = by_tool[name][index]
            row += [entry["measured"], entry["result"]]
        rows.append(row)
    return ["## Targets", "", *_table(header, rows)]


def markdown(results: dict[str, Any]) -> str:
    lines = ["# orgmirror benchmark results", ""]
    lines += [
        "Produced by `make bench` (`.venv/bin/python -m bench`); raw numbers in "
        "`bench/results/latest.json`.",
        "",
        *_machine(results),
        "",
    ]
    if results.get("targets"):
        lines += [*_targets_section(results["targets"]), ""]
    if "mirror" in results:
        lines += [*_mirror_section(results["mirror"]), ""]
    if "api" in results:
        lines += [*_api_section(results["api"]), ""]
    if "discovery" in results:
        lines += [*_discovery_section(results["discovery"]), ""]
    if FINDINGS.exists():
        lines += [FINDINGS.read_text().strip(), ""]
    return "\n".join(lines)
