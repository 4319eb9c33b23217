"""CPU seconds spent by the processes of one scenario: where does the wall time go?

- a running process: utime + stime from ``/proc/PID/stat`` (the registries, the worker);
- its reaped children: cutime + cstime of the parent (the worker's skopeo processes);
- this process's reaped children: ``RUSAGE_CHILDREN`` (the peers' skopeo processes).
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pids: list[int]) -> tuple[float, float]:
    """(own, reaped children) CPU seconds of ``pids`` together; a process gone counts 0."""
    own = children = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        own += (utime + stime) / _TICK
        children += (cutime + cstime) / _TICK
    return own, children


def reaped_children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU of named processes between ``start()`` and ``stop()``."""

    def __init__(self, pids: dict[str, list[int]], *, children_of_self: bool = False) -> None:
        self.pids = pids
        self.children_of_self = children_of_self
        self._before: dict[str, tuple[float, float]] = {}
        self._self_before = 0.0

    def start(self) -> CpuMeter:
        self._before = {name: process_cpu(pid) for name, pid in self.pids.items()}
        self._self_before = reaped_children_cpu()
        return self

    def stop(self) -> dict[str, float]:
        spent: dict[str, float] = {}
        for name, pid in self.pids.items():
            own, children = process_cpu(pid)
            own0, children0 = self._before[name]
            spent[name] = round(own - own0, 2)
            if children - children0 > 0:
                spent[f"{name} children"] = round(children - children0, 2)
        if self.children_of_self:
            spent["skopeo"] = round(reaped_children_cpu() - self._self_before, 2)
        return spent
