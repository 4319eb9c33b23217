"""Child processes for the peers: run, time, keep stdout and the tail of stderr.

Memory is not taken from ``wait4``/``ru_maxrss`` (see bench/memory.py for why); peers are
sampled like orgmirror's worker is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

STDERR_TAIL = 2000


@dataclass(frozen=True)
class ProcResult:
    argv: tuple[str, ...]
    returncode: int
    seconds: float
    stdout: str
    stderr_tail: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


class ProcessFailed(RuntimeError):
    """A peer command that had to succeed did not."""

    def __init__(self, result: ProcResult) -> None:
        super().__init__(
            f"{' '.join(result.argv[:4])} … exited {result.returncode}"
            f"{' (timed out)' if result.timed_out else ''}: {result.stderr_tail[-600:]}"
        )
        self.result = result


def run_measured(
    argv: Sequence[str], env: dict[str, str], *, timeout: float = 600.0, check: bool = True
) -> ProcResult:
    """Run ``argv`` to completion in its own process group; stdout captured, stderr tail kept."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            start_new_session=True,
        )
        timed_out = False
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        result = ProcResult(
            argv=tuple(argv),
            returncode=process.returncode,
            seconds=seconds,
            stdout=out.read().decode(errors="replace"),
            stderr_tail=err.read().decode(errors="replace")[-STDERR_TAIL:],
            timed_out=timed_out,
        )
    if check and not result.ok:
        raise ProcessFailed(result)
    return result


class Interrupted(RuntimeError):
    """The run was cancelled (Ctrl-C): no new process is started."""


def run_pool(
    commands: Sequence[Sequence[str]],
    env: dict[str, str],
    *,
    parallel: int,
    stop: threading.Event | None = None,
) -> list[ProcResult]:
    """Run every command, at most ``parallel`` at once; raises on the first failure. Setting
    ``stop`` (from another thread) ends the pool after the processes already running."""

    def one(argv: Sequence[str]) -> ProcResult:
        if stop is not None and stop.is_set():
            raise Interrupted("stopped")
        return run_measured(argv, env)

    if parallel <= 1:
        return [one(argv) for argv in commands]
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = [pool.submit(one, argv) for argv in commands]
        try:
            return [future.result() for future in futures]
        finally:
            for future in futures:
                future.cancel()


def skopeo_env(home: Path) -> dict[str, str]:
    """What orgmirror's own skopeo children get (app/registry/skopeo.py ``_env``): PATH, a
    private HOME and TMPDIR — so peers and orgmirror run skopeo in the same environment."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
    }
