"""Run ``skopeo copy`` safely: argv list, explicit env, own process group, hard time limit.

Credentials never appear in the argument list (``ps`` shows it): each side gets its own
temporary authfile, mode 0600, removed when the copy ends. skopeo exits 1 for every failure,
so the cause is classified from stderr to decide whether a retry can help.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from app.registry.http import ProxySettings

KILL_GRACE_SECONDS = 2.0
STDERR_LIMIT = 4000

# Substrings of skopeo/containers-image errors that a later attempt may not hit again.
TRANSIENT_MARKERS = (
    "connection refused",
    "connection reset",
    "broken pipe",
    "i/o timeout",
    "tls handshake timeout",
    "context deadline exceeded",
    "client.timeout exceeded",
    "unexpected eof",
    ": eof",
    "no route to host",
    "500 internal server error",
    "502 bad gateway",
    "503 service unavailable",
    "504 gateway timeout",
    "toomanyrequests",
    "too many requests",
    "status 500",
    "status 502",
    "status 503",
    "status 504",
    "received unexpected http status: 5",
)


@dataclass(frozen=True)
class RegistryAuth:
    host: str
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class CopySide:
    """One side of a copy: the image reference and how to reach its registry."""

    reference: str  # docker://host/repo:tag
    auth: RegistryAuth | None
    tls_verify: bool
    cert_dir: str | None = None


@dataclass(frozen=True)
class CopyResult:
    returncode: int | None
    stderr: str
    timed_out: bool
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def transient(self) -> bool:
        if self.timed_out or (self.returncode is not None and self.returncode < 0):
            return True  # timed out, or killed by a signal (OOM killer, an operator)
        text = self.stderr.lower()
        return any(marker in text for marker in TRANSIENT_MARKERS)

    def reason(self) -> str:
        """The useful last line of stderr (skopeo prints the cause last)."""
        if self.timed_out:
            return f"skopeo timed out after {self.seconds:.0f}s and was killed"
        if self.returncode is not None and self.returncode < 0:
            return f"skopeo was killed by signal {-self.returncode}"
        lines = [line.strip() for line in self.stderr.strip().splitlines() if line.strip()]
        last = lines[-1] if lines else f"skopeo exited with status {self.returncode}"
        return last.removeprefix('time="').split('msg="')[-1].rstrip('"')[:500]


@contextlib.contextmanager
def authfiles(*sides: CopySide) -> Iterator[tuple[Path, list[Path | None]]]:
    """A private temp dir with one 0600 authfile per side that has credentials."""
    directory = Path(tempfile.mkdtemp(prefix="orgmirror-copy-"))
    try:
        os.chmod(directory, 0o700)
        paths: list[Path | None] = []
        for index, side in enumerate(sides):
            if side.auth is None:
                paths.append(None)
                continue
            path = directory / f"auth-{index}.json"
            token = base64.b64encode(f"{side.auth.username}:{side.auth.password}".encode())
            content = json.dumps({"auths": {side.auth.host: {"auth": token.decode()}}})
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(content)
            paths.append(path)
        yield directory, paths
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _sync_yaml(host: str, tls_verify: bool, repository: str, tags: list[str]) -> str:
    """skopeo sync's YAML source for exactly these tags (JSON strings are valid YAML)."""
    lines = [f"{json.dumps(host)}:", f"  tls-verify: {'true' if tls_verify else 'false'}"]
    lines += ["  images:", f"    {json.dumps(repository)}:"]
    lines += [f"      - {json.dumps(tag)}" for tag in tags]
    return "\n".join(lines) + "\n"


def _side_args(prefix: str, side: CopySide, authfile: Path | None) -> list[str]:
    args = [f"--{prefix}-tls-verify={'true' if side.tls_verify else 'false'}"]
    if authfile is not None:
        args += [f"--{prefix}-authfile", str(authfile)]
    else:
        args.append(f"--{prefix}-no-creds")
    if side.cert_dir:
        args += [f"--{prefix}-cert-dir", side.cert_dir]
    return args


def _env(home: Path, proxy: ProxySettings | None) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    env["TMPDIR"] = os.environ.get("TMPDIR", "/tmp")
    if proxy is not None:
        for key, value in (
            ("HTTP_PROXY", proxy.http_proxy),
            ("HTTPS_PROXY", proxy.https_proxy),
            ("NO_PROXY", proxy.no_proxy),
        ):
            if value:
                env[key] = env[key.lower()] = value
    return env


class SkopeoRunner:
    """Copies one image (all platforms, digests preserved) with a per-process time limit."""

    def __init__(self, skopeo_path: str = "skopeo") -> None:
        self._path = skopeo_path
        self.processes_started = 0

    async def copy(
        self,
        source: CopySide,
        destination: CopySide,
        *,
        time_limit: float,
        proxy: ProxySettings | None = None,
    ) -> CopyResult:
        with authfiles(source, destination) as (workdir, (src_auth, dst_auth)):
            argv = [
                self._path,
                "--command-timeout",
                f"{int(time_limit)}s",
                "copy",
                "--all",
                "--preserve-digests",
                "--retry-times",
                "0",
                *_side_args("src", source, src_auth),
                *_side_args("dest", destination, dst_auth),
                source.reference,
                destination.reference,
            ]
            return await self._run(argv, _env(workdir, proxy), time_limit + KILL_GRACE_SECONDS)

    async def sync_tags(
        self,
        source: CopySide,
        destination: CopySide,
        tags: list[str],
        *,
        time_limit: float,
        proxy: ProxySettings | None = None,
    ) -> CopyResult:
        """Copy several tags of one repository with ONE ``skopeo sync`` process.

        A skopeo process costs ≈ 30 ms of CPU before it copies anything; for a repository
        with many new tags that start-up dominates (bench/FINDINGS.md). ``source.reference``
        is ``host/repository``; ``destination.reference`` is the target *parent* path,
        because sync (without ``--scoped``) appends the repository's last path component.
        """
        host, _, repository = source.reference.removeprefix("docker://").partition("/")
        with authfiles(source, destination) as (workdir, (src_auth, dst_auth)):
            config = workdir / "sync.yaml"
            config.write_text(_sync_yaml(host, source.tls_verify, repository, tags))
            argv = [
                self._path,
                "--command-timeout",
                f"{int(time_limit)}s",
                "sync",
                "--all",
                "--preserve-digests",
                "--keep-going",
                "--retry-times",
                "0",
                "--src",
                "yaml",
                "--dest",
                "docker",
                *_side_args("src", source, src_auth),
                *_side_args("dest", destination, dst_auth),
                str(config),
                destination.reference,
            ]
            return await self._run(argv, _env(workdir, proxy), time_limit + KILL_GRACE_SECONDS)

    async def _run(self, argv: list[str], env: dict[str, str], limit: float) -> CopyResult:
        loop = asyncio.get_running_loop()
        started = loop.time()
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        self.processes_started += 1
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), timeout=limit)
        except TimeoutError:
            await _kill_group(process)
            return CopyResult(None, "", True, loop.time() - started)
        except BaseException:
            await _kill_group(process)  # cancelled: the copy must not outlive its run
            raise
        text = stderr.decode(errors="replace")[-STDERR_LIMIT:]
        return CopyResult(process.returncode, text, False, loop.time() - started)


async def _kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the whole process group, then SIGKILL what is left after a grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), timeout=KILL_GRACE_SECONDS)
            return
        except TimeoutError:
            continue
