"""The mirror tools under test: orgmirror and the skopeo ways of doing the same job.

Every tool mirrors ``src/rNNN:*`` of the source into ``myorg/rNNN:*`` of a plain-HTTP
loopback target, with ``--all --preserve-digests`` (multi-arch indexes intact, digests kept)
and ``--src-tls-verify=false --dest-tls-verify=false``. Peers get the repository list for
free (orgmirror lists the source catalog itself, inside its measured time).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.memory import MemoryPeaks, MemorySampler
from bench.procs import ProcResult, run_pool, skopeo_env
from bench.profiling import recording
from bench.service import Api, RunFailed, RunWatcher, api_on, fresh_database, service_env
from bench.settings import BenchConfig
from bench.worker_proc import WorkerProcess
from bench.workload import Workload, target_repo
from tests.support.registry_server import RegistryServer

# As root, skopeo keeps a blob-info cache here; left in place it turns later "cold" copies
# into cross-repository mounts (NOTES-registries.md), so it is removed before every scenario.
BLOB_INFO_CACHE = Path("/var/lib/containers/cache/blob-info-cache-v1.boltdb")
RUN_TIMEOUT = 900.0
SKOPEO = "skopeo"
TLS_OFF = ("--src-tls-verify=false", "--dest-tls-verify=false")


def reset_blob_cache() -> None:
    with contextlib.suppress(FileNotFoundError):
        BLOB_INFO_CACHE.unlink()


@dataclass
class MirrorOutcome:
    seconds: float
    processes: int  # skopeo processes started
    memory: MemoryPeaks  # skopeo children (and orgmirror's worker) during this run
    details: dict[str, Any] = field(default_factory=dict)


class Tool(Protocol):
    name: str
    label: str

    @property
    def parallelism(self) -> str: ...

    async def start(self, target: RegistryServer) -> None: ...

    async def mirror(self) -> MirrorOutcome: ...

    async def stop(self) -> dict[str, Any]: ...

    def cpu_pids(self) -> dict[str, list[int]]:
        """Long-running processes of the tool whose CPU a scenario should count."""
        ...


class SkopeoPeer:
    """Shared plumbing of the skopeo peers: hosts, a private HOME, the run in a thread."""

    name = "skopeo"
    label = "skopeo"

    def __init__(self, workload: Workload, workdir: Path, parallel: int) -> None:
        self.workload = workload
        self.workdir = workdir
        self.parallel = parallel
        self.target: RegistryServer | None = None
        self.env = skopeo_env(workdir / "home")
        self.stop_event = threading.Event()

    @property
    def parallelism(self) -> str:
        return "1 process at a time" if self.parallel == 1 else f"{self.parallel} processes"

    @property
    def source_host(self) -> str:
        return self.workload.source.host

    @property
    def target_host(self) -> str:
        assert self.target is not None, "start() first"
        return self.target.host

    async def start(self, target: RegistryServer) -> None:
        self.target = target

    async def mirror(self) -> MirrorOutcome:
        sampler = MemorySampler(os.getpid(), include_self=False).start()
        self.stop_event.clear()
        try:
            started = time.monotonic()
            results, details = await asyncio.to_thread(self._mirror)
            seconds = time.monotonic() - started
        except asyncio.CancelledError:
            self.stop_event.set()  # the thread starts no further skopeo process
            raise
        finally:
            peaks = sampler.stop()
        return MirrorOutcome(seconds, len(results), peaks, details)

    def _run(self, commands: list[list[str]], parallel: int) -> list[ProcResult]:
        return run_pool(commands, self.env, parallel=parallel, stop=self.stop_event)

    def _mirror(self) -> tuple[list[ProcResult], dict[str, Any]]:
        """Run the peer's commands; the results of every process, and details to report."""
        raise NotImplementedError

    async def stop(self) -> dict[str, Any]:
        return {}

    def cpu_pids(self) -> dict[str, list[int]]:
        return {}  # peers' skopeo processes are counted as this process's reaped children


class CopyPerTag(SkopeoPeer):
    """Quay's method: ``skopeo list-tags`` per repository, then one ``skopeo copy`` per tag."""

    def __init__(self, workload: Workload, workdir: Path, parallel: int) -> None:
        super().__init__(workload, workdir, parallel)
        self.name = "copy-per-tag-seq" if parallel == 1 else "copy-per-tag-par"
        self.label = "`skopeo copy` per tag" + (" (Quay's method)" if parallel == 1 else "")

    def _list_argv(self, repo: str) -> list[str]:
        return [SKOPEO, "list-tags", "--tls-verify=false", f"docker://{self.source_host}/{repo}"]

    def _copy_argv(self, repo: str, tag: str) -> list[str]:
        return [
            SKOPEO,
            "copy",
            "--all",
            "--preserve-digests",
            *TLS_OFF,
            f"docker://{self.source_host}/{repo}:{tag}",
            f"docker://{self.target_host}/{target_repo(repo)}:{tag}",
        ]

    def _mirror(self) -> tuple[list[ProcResult], dict[str, Any]]:
        repos = self.workload.repos
        listed = self._run([self._list_argv(r) for r in repos], self.parallel)
        copies = [
            self._copy_argv(repo, tag)
            for repo, result in zip(repos, listed, strict=True)
            for tag in sorted(json.loads(result.stdout)["Tags"] or [])
        ]
        copied = self._run(copies, self.parallel)
        return listed + copied, {"copies": len(copied)}


class SyncPerRepo(SkopeoPeer):
    """``skopeo sync --src docker`` once per repository (all its tags in one process)."""

    def __init__(self, workload: Workload, workdir: Path, parallel: int) -> None:
        super().__init__(workload, workdir, parallel)
        self.name = "sync-per-repo-seq" if parallel == 1 else "sync-per-repo-par"
        self.label = "`skopeo sync` per repository"

    def _argv(self, repo: str) -> list[str]:
        return [
            SKOPEO,
            "sync",
            "--all",
            "--preserve-digests",
            "--src",
            "docker",
            "--dest",
            "docker",
            *TLS_OFF,
            f"{self.source_host}/{repo}",
            f"{self.target_host}/{target_repo(repo).rsplit('/', 1)[0]}",
        ]

    def _mirror(self) -> tuple[list[ProcResult], dict[str, Any]]:
        argvs = [self._argv(repo) for repo in self.workload.repos]
        return self._run(argvs, self.parallel), {}


class SyncYaml(SkopeoPeer):
    """One ``skopeo sync --src yaml`` process for every repository (all tags of each)."""

    def __init__(self, workload: Workload, workdir: Path) -> None:
        super().__init__(workload, workdir, parallel=1)
        self.name = "sync-yaml"
        self.label = "one `skopeo sync --src yaml`"

    def _write_yaml(self) -> Path:
        # An empty tag list means "every tag" to skopeo sync.
        lines = [f"{self.source_host}:", "  tls-verify: false", "  images:"]
        lines += [f"    {repo}: []" for repo in self.workload.repos]
        path = self.workdir / "sync.yaml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _mirror(self) -> tuple[list[ProcResult], dict[str, Any]]:
        argv = [
            SKOPEO,
            "sync",
            "--all",
            "--preserve-digests",
            "--src",
            "yaml",
            "--dest",
            "docker",
            "--dest-tls-verify=false",
            str(self._write_yaml()),
            f"{self.target_host}/{target_repo(self.workload.repos[0]).rsplit('/', 1)[0]}",
        ]
        return self._run([argv], 1), {}


class Orgmirror:
    """orgmirror as deployed: fresh PostgreSQL, config through the API, ``orgmirror worker``
    processes (``workers`` of them, sharing the parallelism budget).

    A run is timed from the sync-now call to the GET that shows the terminal status.
    """

    def __init__(
        self,
        workload: Workload,
        workdir: Path,
        parallel: int,
        *,
        name: str = "orgmirror",
        label: str = "orgmirror",
        workers: int = 1,
        worker_env: dict[str, str] | None = None,
        profile_dir: Path | None = None,
    ) -> None:
        self.workload = workload
        self.workdir = workdir
        self.parallel = parallel
        self.name = name
        self.label = label
        self.workers = workers
        self.worker_env = worker_env or {}
        self.profile_dir = profile_dir
        self._stack = contextlib.AsyncExitStack()
        self._api: Api | None = None
        self._watcher: RunWatcher | None = None
        self._running: list[WorkerProcess] = []
        self._database = ""
        self._target_host = ""
        self._peaks: list[dict[str, Any]] = []  # per run: the sampler's window
        self._hwm_kib: list[int] = []  # per worker process: VmHWM at its end
        self.runs = 0

    @property
    def per_worker(self) -> int:
        return max(1, self.parallel // self.workers)

    @property
    def parallelism(self) -> str:
        workers = f"{self.workers} worker{'s' if self.workers > 1 else ''}"
        return f"{workers}, {self.per_worker * self.workers} skopeo processes"

    async def start(self, target: RegistryServer) -> None:
        self._target_host = target.host
        self._database = await self._stack.enter_async_context(fresh_database("mirror"))
        self._api = await self._stack.enter_async_context(api_on(self._database, target.host))
        await self._api.create_org_and_robot()
        await self._api.create_config(self.workload.source.url)
        self._watcher = await self._stack.enter_async_context(RunWatcher(self._database))
        await self._start_workers()

    async def _start_workers(self, **extra_env: str) -> None:
        home = self.workdir / "home"
        await asyncio.to_thread(home.mkdir, parents=True, exist_ok=True)
        env = service_env(
            self._database,
            home,
            self._target_host,
            ORGMIRROR_WORKER_CONCURRENCY=str(self.per_worker),
            **{**self.worker_env, **extra_env},
        )
        for number in range(self.workers):
            worker = WorkerProcess(self._database, env, self.workdir / f"worker-{number}.log")
            self._running.append(await worker.start())

    async def restart_workers(self, **extra_env: str) -> None:
        """New worker processes with other settings (``ORGMIRROR_TARGET_RECHECK_EVERY``)."""
        await self._stop_workers()
        await self._start_workers(**extra_env)

    async def _stop_workers(self) -> None:
        running, self._running = self._running, []
        for worker in running:
            self._hwm_kib.append(await worker.stop())

    def _pids(self) -> list[int]:
        return [w.process.pid for w in self._running if w.process is not None]

    def _alive(self) -> bool:
        return all(worker.alive() for worker in self._running)

    async def mirror(self) -> MirrorOutcome:
        assert self._api is not None, "start() first"
        assert self._watcher is not None
        self.runs += 1
        profile = self.profile_dir / f"{self.name}-run{self.runs}.txt" if self.profile_dir else None
        sampler = MemorySampler(self._pids()).start()
        try:
            with recording(self._pids()[0], profile):
                started = time.monotonic()
                await self._api.sync_now()
                config = await self._watcher.wait_terminal(self._api, RUN_TIMEOUT, self._alive)
                seconds = time.monotonic() - started
        finally:
            window = sampler.stop()
        self._peaks.append(window.as_dict())
        last = config.get("last_sync") or {}
        if config["sync_status"] != "SUCCESS":
            raise RunFailed(f"orgmirror run ended {config['sync_status']}: {last}")
        return MirrorOutcome(seconds, len(window.children_seen), window, {"last_sync": last})

    def cpu_pids(self) -> dict[str, list[int]]:
        # "worker children" (cutime) are the workers' reaped skopeo processes.
        return {"worker": self._pids()}

    async def stop(self) -> dict[str, Any]:
        try:
            await self._stop_workers()
        finally:
            await self._stack.aclose()
        return {
            "workers": self.workers,
            "worker_vmhwm_mib": round(max(self._hwm_kib, default=0) / 1024, 1),
            "largest_skopeo_rss_mib": _most(self._peaks, "largest_child_rss_mib"),
            "worker_plus_children_peak_mib": _most(self._peaks, "worker_plus_children_peak_mib"),
            "max_concurrent_skopeo": _most(self._peaks, "max_concurrent_children"),
            "per_run": self._peaks,
        }


def _most(peaks: list[dict[str, Any]], key: str) -> Any:
    return max((p[key] for p in peaks), default=0)


def make_tool(name: str, workload: Workload, workdir: Path, cfg: BenchConfig) -> Tool:
    workdir.mkdir(parents=True, exist_ok=True)
    parallel = cfg.parallel
    peers: dict[str, Callable[[], Tool]] = {
        "copy-per-tag-seq": lambda: CopyPerTag(workload, workdir, 1),
        "copy-per-tag-par": lambda: CopyPerTag(workload, workdir, parallel),
        "sync-per-repo-seq": lambda: SyncPerRepo(workload, workdir, 1),
        "sync-per-repo-par": lambda: SyncPerRepo(workload, workdir, parallel),
        "sync-yaml": lambda: SyncYaml(workload, workdir),
    }
    if name in peers:
        return peers[name]()
    env = dict(cfg.worker_env)
    common: dict[str, Any] = {"name": name, "profile_dir": cfg.profile_dir}
    if name == "orgmirror":
        return Orgmirror(workload, workdir, parallel, worker_env=env, **common)
    if name == "orgmirror-2workers":
        label = "orgmirror, 2 worker processes"
        return Orgmirror(
            workload, workdir, parallel, label=label, workers=2, worker_env=env, **common
        )
    raise ValueError(f"unknown tool {name!r}")


def load_average() -> float:
    return round(os.getloadavg()[0], 2)
