"""Is the machine quiet? Other people's work on this 2-core box skews every timing.

Between scenarios nothing of the benchmark runs, so CPU that is busy then belongs to
someone else. Before each measurement the benchmark samples it for half a second and, when
it is above a threshold, waits (bounded) for it to calm down; the value is recorded with
the result either way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

log = logging.getLogger("bench.quiet")
WINDOW = 0.5
THRESHOLD = 0.15  # of the whole machine: 15 % of 2 cores ≈ a third of one core
MAX_WAIT = 60.0
TICK = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy since boot (all cores)."""
    return _jiffies()[0] / TICK


def _jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user/nice
    return total - idle, total


async def busy_fraction(window: float = WINDOW) -> float:
    busy0, total0 = _jiffies()
    await asyncio.sleep(window)
    busy1, total1 = _jiffies()
    return (busy1 - busy0) / max(1, total1 - total0)


async def wait_quiet(threshold: float = THRESHOLD, max_wait: float = MAX_WAIT) -> float:
    """The background CPU fraction just before returning (after waiting, if needed)."""
    deadline = time.monotonic() + max_wait
    busy = await busy_fraction()
    waited = False
    while busy > threshold and time.monotonic() < deadline:
        if not waited:
            log.info("machine busy (%.0f %% CPU not ours); waiting", busy * 100)
            waited = True
        await asyncio.sleep(2.0)
        busy = await busy_fraction()
    return round(busy, 3)
