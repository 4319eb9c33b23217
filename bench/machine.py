"""What the numbers were measured on: CPU, memory, load, tool versions, date."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from bench.settings import PG_ADMIN_DSN


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError as exc:
        return f"unavailable ({exc.strerror})"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else ""


def _cpu_model() -> str:
    text = Path("/proc/cpuinfo").read_text()
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else platform.processor() or "unknown"


def _memory_gib() -> float:
    text = Path("/proc/meminfo").read_text()
    match = re.search(r"^MemTotal:\s+(\d+) kB", text, re.MULTILINE)
    return round(int(match.group(1)) / 1024 / 1024, 1) if match else 0.0


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


async def _postgres_version() -> str:
    try:
        connection = await asyncpg.connect(PG_ADMIN_DSN)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"unavailable ({exc})"
    try:
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()


def _os_name() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return platform.platform()
    match = re.search(r'^PRETTY_NAME="?([^"\n]+)"?$', text, re.MULTILINE)
    return match.group(1) if match else platform.platform()


async def describe() -> dict[str, object]:
    """A JSON-able description of this machine and the versions of every tool measured."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "os": _os_name(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "skopeo": _first_line(["skopeo", "--version"]),
        "registry": _first_line(["/usr/bin/docker-registry", "--version"]),
        "postgresql": await _postgres_version(),
        "ab": _first_line(["ab", "-V"]).removeprefix("This is ").split(" <")[0],
        "load_average_at_start": [round(x, 2) for x in load_average()],
    }
