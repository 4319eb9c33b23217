"""Run the ``orgmirror`` command as a new user meets it: real processes, a clean environment.

`OrgmirrorServer` starts ``orgmirror serve`` on a free loopback port in its own process group
and always ends it (SIGTERM, then SIGKILL of that group). `run_cli` runs any other subcommand
with the same working directory and environment, so both see the same data directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

ORGMIRROR = Path(sys.executable).with_name("orgmirror")
READY_PATH = "/readyz"


def clean_env(home: Path, **settings: str) -> dict[str, str]:
    """No inherited ``ORGMIRROR_*``; HOME is the test's directory; output is unbuffered."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(settings)
    return env


def run_cli(
    *args: str, cwd: Path, env: dict[str, str], timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """``orgmirror ARGS`` to completion; a command that hangs fails the test after ``timeout``."""
    return subprocess.run(
        [str(ORGMIRROR), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class OrgmirrorServer:
    """``orgmirror serve --port N`` as a child process; ``url`` is ``http://127.0.0.1:N``."""

    def __init__(
        self, *, cwd: Path, env: dict[str, str], log_dir: Path, start_timeout: float = 20.0
    ) -> None:
        self.cwd = cwd
        self.env = env
        self.log_dir = log_dir
        self.start_timeout = start_timeout
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stdout(self) -> str:
        return self._log("out")

    @property
    def stderr(self) -> str:
        return self._log("err")

    def _log(self, kind: str) -> str:
        path = self.log_dir / f"serve-{self._starts}.{kind}"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> Self:
        """Start (or restart, on the same port and data) and wait until the API answers."""
        assert self._process is None, "already running"
        self._starts += 1
        out = (self.log_dir / f"serve-{self._starts}.out").open("wb")
        err = (self.log_dir / f"serve-{self._starts}.err").open("wb")
        with out, err:
            self._process = subprocess.Popen(
                [str(ORGMIRROR), "serve", "--port", str(self.port)],
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while True:
                if self._process.poll() is not None:
                    raise RuntimeError(
                        f"orgmirror serve exited with {self._process.returncode}:\n"
                        f"{self.stdout}\n{self.stderr}"
                    )
                try:
                    if client.get(READY_PATH).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"orgmirror serve did not answer:\n{self.stderr}")
                time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM (uvicorn's graceful exit), then SIGKILL to the process group if it lingers."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
