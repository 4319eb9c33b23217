"""Peak memory of a process and its skopeo children, sampled from ``/proc`` every 50 ms.

``VmHWM`` (the kernel's high-water mark of one address space) is what is read, never
``ru_maxrss``: a child forked from a 100 MB Python process inherits that parent's high-water
mark in ``ru_maxrss`` across ``exec`` (Linux keeps it in the signal struct), so ``wait4``
would report every skopeo process as big as its parent. For the same reason children are
only counted once they *are* skopeo (``/proc/PID/comm``), not in the instant between fork
and exec. VmHWM is monotonic, so a sample taken a few ms before a child exits still holds
its peak; only a child that lives less than one interval can be missed.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

# 20 samples a second: a skopeo copy lives ≥ 100 ms here, and a sample costs ≈ 0.2-0.5 ms
# of CPU that the measured tool would otherwise have.
SAMPLE_INTERVAL = 0.05
_FIELD = re.compile(r"^(VmRSS|VmHWM):\s+(\d+) kB", re.MULTILINE)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _status_kib(pid: int) -> dict[str, int]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {name: int(value) for name, value in _FIELD.findall(text)}


def vmhwm_kib(pid: int) -> int:
    return _status_kib(pid).get("VmHWM", 0)


def children(pid: int) -> list[int]:
    """Direct children of every thread of ``pid``."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


@dataclass
class MemoryPeaks:
    worker_hwm_kib: int = 0  # VmHWM: the kernel's own high-water mark of the worker
    worker_rss_kib: int = 0  # highest sampled VmRSS (per window; VmHWM cannot be reset)
    child_peak_kib: int = 0  # the largest VmHWM of any child
    tree_peak_kib: int = 0  # the largest sampled sum of VmRSS, worker plus live children
    max_children: int = 0
    children_seen: set[int] = field(default_factory=set)
    samples: int = 0

    def add(self, mine: list[dict[str, int]], kids: dict[int, dict[str, int]]) -> None:
        """One sample: the watched processes (``mine``) and their skopeo children."""
        self.samples += 1
        own_rss = sum(me.get("VmRSS", 0) for me in mine)
        self.worker_hwm_kib = max([self.worker_hwm_kib, *(me.get("VmHWM", 0) for me in mine)])
        self.worker_rss_kib = max(self.worker_rss_kib, own_rss)
        self.max_children = max(self.max_children, len(kids))
        self.children_seen.update(kids)
        self.child_peak_kib = max(
            [self.child_peak_kib, *(k.get("VmHWM", 0) for k in kids.values())]
        )
        live = sum(k.get("VmRSS", 0) for k in kids.values())
        self.tree_peak_kib = max(self.tree_peak_kib, own_rss + live)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "worker_vmhwm_mib": _mib(self.worker_hwm_kib),
            "worker_rss_peak_mib": _mib(self.worker_rss_kib),
            "largest_child_rss_mib": _mib(self.child_peak_kib),
            "worker_plus_children_peak_mib": _mib(self.tree_peak_kib),
            "max_concurrent_children": self.max_children,
            "children_seen": len(self.children_seen),
            "samples": self.samples,
        }


class MemorySampler:
    """Samples ``pids`` and those of their children whose command name is ``child_comm``.
    ``include_self=False`` counts only the children (for peers run by this process)."""

    def __init__(
        self, pids: int | list[int], child_comm: str = "skopeo", *, include_self: bool = True
    ) -> None:
        self.pids = [pids] if isinstance(pids, int) else list(pids)
        self.child_comm = child_comm
        self.include_self = include_self
        self.total = MemoryPeaks()
        self.window = MemoryPeaks()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="memory-sampler")

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def next_window(self) -> MemoryPeaks:
        """The peaks since the previous call; a new window starts now."""
        self._sample()
        with self._lock:
            done, self.window = self.window, MemoryPeaks()
        return done

    def stop(self) -> MemoryPeaks:
        """Stop sampling (call before the process exits: VmHWM dies with it)."""
        self._sample()
        self._stop.set()
        self._thread.join()
        return self.total

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            self._sample()

    def _sample(self) -> None:
        mine = [status for pid in self.pids if (status := _status_kib(pid))]
        if not mine:
            return
        kids = {
            child: _status_kib(child)
            for pid in self.pids
            for child in children(pid)
            if _comm(child) == self.child_comm
        }
        own = mine if self.include_self else []
        with self._lock:
            self.total.add(own, kids)
            self.window.add(own, kids)
