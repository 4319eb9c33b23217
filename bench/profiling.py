"""Optional py-spy recording of the worker during each orgmirror run (``--profile DIR``).

py-spy is not a project dependency: ``.venv/bin/pip install py-spy`` first. Output is
py-spy's raw (collapsed-stack) format, one file per run; ``python -m bench.profiling FILE``
prints the functions with the most samples (own and cumulative).
"""

from __future__ import annotations

import collections
import contextlib
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

PY_SPY_RATE = 100


def py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def recording(pid: int, output: Path | None) -> Iterator[None]:
    """Record ``pid`` with py-spy while the block runs (nothing when ``output`` is None)."""
    binary = py_spy() if output is not None else None
    if binary is None or output is None:
        yield
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    argv = [binary, "record", "--pid", str(pid), "--rate", str(PY_SPY_RATE)]
    argv += ["--format", "raw", "--output", str(output)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def top_functions(path: Path, limit: int = 25) -> list[tuple[str, int, int]]:
    """(frame, own samples, cumulative samples) of the most expensive frames, by cumulative."""
    own: collections.Counter[str] = collections.Counter()
    cumulative: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        own[frames[-1]] += int(count)
        for frame in set(frames):
            cumulative[frame] += int(count)
    return [(f, own[f], cumulative[f]) for f, _ in cumulative.most_common(limit)]


def main() -> None:
    for name in sys.argv[1:]:
        path = Path(name)
        total = sum(
            int(line.rpartition(" ")[2])
            for line in path.read_text().splitlines()
            if line.rpartition(" ")[2].isdigit()
        )
        print(f"{path}: {total} samples")
        for frame, mine, cumulative in top_functions(path):
            print(f"  {cumulative:6d} {mine:6d}  {frame}")


if __name__ == "__main__":
    main()
