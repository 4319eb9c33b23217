"""An ``orgmirror worker`` process: started, known to be listening, stopped, measured."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from bench.memory import vmhwm_kib
from bench.service import ORGMIRROR, libpq_dsn

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


async def _listeners(database: str) -> int:
    """LISTENing connections on the database: the worker is ready when its own appears."""
    connection = await asyncpg.connect(libpq_dsn(database))
    try:
        count = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'",
            database,
        )
        return int(count)
    finally:
        await connection.close()


class WorkerProcess:
    """``orgmirror worker`` (or another argv running the same loop); ``stop()`` returns its
    VmHWM, the kernel's high-water mark of its resident memory."""

    def __init__(
        self,
        database: str,
        env: dict[str, str],
        log_path: Path,
        argv: Sequence[str] = (str(ORGMIRROR), "worker"),
    ) -> None:
        self.database = database
        self.env = env
        self.log_path = log_path
        self.argv = list(argv)
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0

    async def start(self) -> WorkerProcess:
        before = await _listeners(self.database)
        started = time.monotonic()
        self.process = await asyncio.to_thread(self._spawn)
        while await _listeners(self.database) <= before:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited at start-up:\n{self.log_tail()}")
            if time.monotonic() - started > READY_TIMEOUT:
                raise RuntimeError(f"worker not listening after {READY_TIMEOUT}s")
            await asyncio.sleep(0.05)
        self.startup_seconds = time.monotonic() - started
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    async def stop(self) -> int:
        """VmHWM in KiB (read while the process still lives), then SIGTERM (the worker hands
        its leases back) and reap it."""
        process, self.process = self.process, None
        if process is None:
            return 0
        hwm = vmhwm_kib(process.pid)
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await asyncio.to_thread(process.wait)
        return hwm
