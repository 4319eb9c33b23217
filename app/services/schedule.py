"""The schedule grid: runs happen at ``anchor + k * interval``; missed slots are skipped."""

from __future__ import annotations

from datetime import datetime, timedelta


def next_slot(*, anchor: datetime, interval: int, now: datetime) -> datetime:
    """The first grid slot strictly after ``now`` (or the anchor itself if still ahead)."""
    if anchor > now:
        return anchor
    elapsed = (now - anchor).total_seconds()
    steps = int(elapsed // interval) + 1
    return anchor + timedelta(seconds=steps * interval)
