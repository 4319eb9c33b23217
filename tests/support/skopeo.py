"""Run the real `/usr/bin/skopeo` from tests, safely.

skopeo 1.9.3 hangs forever on a server that accepts connections and never answers, so every
run gets `--command-timeout` and a process-level timeout that kills its process group.
Credentials go into 0600 authfiles, never on the command line (they would show in `ps`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SKOPEO_BINARY = "/usr/bin/skopeo"


@dataclass(frozen=True)
class SkopeoResult:
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> SkopeoResult:
        """Raise with stderr (skopeo's only error channel) unless the run succeeded."""
        if self.returncode != 0:
            raise AssertionError(f"skopeo exited {self.returncode}: {self.stderr}")
        return self


def write_authfile(path: Path, credentials: Mapping[str, tuple[str, str]]) -> Path:
    """`{"auths": {host: {"auth": base64(user:pass)}}}`, mode 0600 (skopeo reads only `auth`)."""
    auths = {
        host: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
        for host, (user, password) in credentials.items()
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"auths": auths}, handle)
    return path


async def skopeo(*args: str, time_limit: float = 60.0) -> SkopeoResult:
    """Run `skopeo --command-timeout … ARGS` and return its result (never raises on rc≠0)."""
    argv = [SKOPEO_BINARY, "--command-timeout", f"{int(time_limit)}s", *args]
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")},
    )
    try:
        async with asyncio.timeout(time_limit + 5):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        raise
    assert process.returncode is not None
    return SkopeoResult(process.returncode, stdout.decode(), stderr.decode())
