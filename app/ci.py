"""``orgmirror sync-now``: what a CI job wants in one line — trigger, follow, exit code.

It talks to a running orgmirror over HTTP like any client: ``sync-now?coalesce=true`` (never
refused because a run is already queued or active), then, with ``--wait``, polls GET until the
status is terminal, printing progress as repositories finish.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

EXIT_SUCCESS = 0
EXIT_FAIL = 1
EXIT_CANCEL = 2
EXIT_TIMEOUT = 3
EXIT_ERROR = 4
TERMINAL = {"SUCCESS": EXIT_SUCCESS, "FAIL": EXIT_FAIL, "CANCEL": EXIT_CANCEL}
PENDING = ("SYNC_NOW", "SYNCING")


@dataclass(frozen=True)
class Follow:
    url: str
    org: str
    token: str
    wait: bool
    timeout: float
    interval: float


class ApiProblem(Exception):
    """The API refused or could not be reached; the message says what to fix."""


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body.get("detail") or body)
    except ValueError:
        return response.text[:200]


def _call(client: httpx.Client, method: str, path: str) -> httpx.Response:
    try:
        response = client.request(method, path)
    except httpx.HTTPError as exc:
        raise ApiProblem(f"cannot reach {client.base_url}: {exc}") from exc
    if response.status_code >= 400:
        raise ApiProblem(
            f"{method} {path} answered {response.status_code}: {_error_text(response)}"
        )
    return response


def progress(config: dict[str, Any]) -> tuple[int, int]:
    """(repositories done, repositories in this run) from the status counts."""
    counts: dict[str, int] = config.get("repo_sync_status_counts") or {}
    total = sum(v for k, v in counts.items() if k != "SKIP")
    pending = sum(counts.get(k, 0) for k in PENDING)
    return total - pending, total


def summary(config: dict[str, Any]) -> str:
    last = config.get("last_sync") or {}
    text = (
        f"{config['sync_status']}: {last.get('repositories_total', 0)} repositories "
        f"({last.get('repositories_failed', 0)} failed), tags copied "
        f"{last.get('tags_copied', 0)}, unchanged {last.get('tags_skipped', 0)}, "
        f"failed {last.get('tags_failed', 0)}"
    )
    if last.get("message"):
        text += f" — {last['message']}"
    return text


def run(options: Follow, echo: Callable[[str], None]) -> int:
    base = f"/api/v1/organization/{options.org}/mirror"
    headers = {"Authorization": f"Bearer {options.token}"}
    with httpx.Client(base_url=options.url, headers=headers, timeout=30) as client:
        try:
            _call(client, "POST", f"{base}/sync-now?coalesce=true")
            echo(f"sync of '{options.org}' requested")
            if not options.wait:
                return EXIT_SUCCESS
            return _follow(client, base, options, echo)
        except ApiProblem as exc:
            echo(f"error: {exc}")
            return EXIT_ERROR


def _follow(client: httpx.Client, base: str, options: Follow, echo: Callable[[str], None]) -> int:
    deadline = time.monotonic() + options.timeout
    shown: tuple[int, int] | None = None
    while True:
        config = _call(client, "GET", base).json()
        status = config["sync_status"]
        if not config.get("is_enabled", True):
            echo("error: the mirror config is disabled, so no run will start; enable it first")
            return EXIT_ERROR
        if status in TERMINAL:
            echo(summary(config))
            return TERMINAL[status]
        current = progress(config)
        if status == "SYNCING" and current != shown:
            echo(f"{status}: {current[0]}/{current[1]} repositories done")
            shown = current
        if time.monotonic() > deadline:
            echo(f"timeout: still {status} after {options.timeout:.0f}s")
            return EXIT_TIMEOUT
        time.sleep(options.interval)
