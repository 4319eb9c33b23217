"""Secrets stay secret (SPEC §3.4, §4.3): a source password, proxy credentials and a robot
token go through a real mirror run, and none of them shows up in the logs, an API response,
a database row or a skopeo command line; the authfiles that carry them are private and gone
once each copy ends, however it ends.

Every skopeo process is observed as it starts (asyncio.create_subprocess_exec, wrapped):
its argv, its environment, what ``ps`` shows (/proc/PID/cmdline) and its authfiles' modes.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import os
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import text, update

from app.models import OrgMirrorConfig
from app.registry.skopeo import CopySide, RegistryAuth, SkopeoRunner
from tests.conftest import auth
from tests.support import images
from tests.support.fixtures import ROBOT_PASSWORD, ROBOT_USER
from tests.support.harbor import HarborEmulator
from tests.support.registry_server import RegistryServer
from tests.workers.conftest import MirrorEnv

SOURCE_USER = "mirror-reader"
SOURCE_PASSWORD = f"src-pw-{uuid.uuid4().hex}"
PROXY_PASSWORD = f"proxy-pw-{uuid.uuid4().hex}"
PROXY_URL = f"http://proxy-user:{PROXY_PASSWORD}@127.0.0.1:3128"
PROXY_VARIABLES = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"}


def _forms(user: str, secret: str) -> set[str]:
    """The secret as it could leak: plain, URL-encoded, and base64 the way Basic auth and
    authfiles carry it."""
    encoded = base64.b64encode
    return {
        secret,
        quote(secret, safe=""),
        encoded(secret.encode()).decode(),
        encoded(f"{user}:{secret}".encode()).decode(),
    }


SECRETS = {
    "source password": _forms(SOURCE_USER, SOURCE_PASSWORD),
    "proxy password": _forms("proxy-user", PROXY_PASSWORD),
    "robot token": _forms(ROBOT_USER, ROBOT_PASSWORD),
}


def leaks(where: str, texts: Iterable[str], *, allowed: Iterable[str] = ()) -> list[str]:
    """Which secrets (in any form) occur in ``texts``: one line per find, for the message."""
    found = []
    skip = set(allowed)
    for number, content in enumerate(texts):
        for name, forms in SECRETS.items():
            if name not in skip and any(form in content for form in forms):
                found.append(f"{name} in {where} #{number}: {content[:300]!r}")
    return found


@dataclass
class Spawn:
    """One skopeo process as it started."""

    pid: int
    argv: list[str]
    env: dict[str, str]
    authfiles: dict[str, tuple[int, int]] = field(default_factory=dict)  # path: (mode, dir mode)


class ProcessTable:
    """What ``ps`` would show: every skopeo command line in /proc, sampled every few ms from
    a thread (the event loop may be busy when a process starts)."""

    def __init__(self) -> None:
        self.cmdlines: set[tuple[str, ...]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> ProcessTable:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _sample(self) -> None:
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if entry.name.isdigit():
                    line = _cmdline(entry.name)
                    if any("skopeo" in part for part in line[:2]):
                        self.cmdlines.add(tuple(line))
            self._stop.wait(0.002)

    def lines_of(self, spawns: list[Spawn]) -> list[tuple[str, ...]]:
        """The sampled command lines of these processes (recognised by their authfiles)."""
        paths = {path for spawn in spawns for path in spawn.authfiles}
        return [line for line in self.cmdlines if paths.intersection(line)]


@dataclass
class Observed:
    spawns: list[Spawn]
    ps: ProcessTable


@pytest.fixture
def observed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Observed]:
    """Record every skopeo process the app starts (while its authfiles still exist), and
    every skopeo command line visible in the process table."""
    real = asyncio.create_subprocess_exec
    seen: list[Spawn] = []

    async def spawn(program: str, *args: str, **kwargs: Any) -> asyncio.subprocess.Process:
        process = await real(program, *args, **kwargs)
        argv = [program, *args]
        if Path(program).name == "skopeo":
            started = Spawn(process.pid, argv, dict(kwargs.get("env") or {}))
            for flag, path in itertools.pairwise(argv):
                if flag.endswith("-authfile"):
                    started.authfiles[path] = (_mode(path), _mode(str(Path(path).parent)))
            seen.append(started)
        return process

    monkeypatch.setattr(asyncio, "create_subprocess_exec", spawn)
    with ProcessTable() as table:
        yield Observed(seen, table)


def _cmdline(pid: str) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            raw = handle.read()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def assert_authfiles_private_and_gone(seen: list[Spawn]) -> None:
    assert seen, "no skopeo process was observed"
    for spawn in seen:
        assert spawn.authfiles, f"skopeo ran without an authfile: {spawn.argv}"
        for path, (mode, dir_mode) in spawn.authfiles.items():
            assert mode == 0o600, f"{path} had mode {mode:o}"
            assert dir_mode == 0o700, f"{Path(path).parent} had mode {dir_mode:o}"
            assert not Path(path).exists(), f"{path} outlived its copy"
            assert not Path(path).parent.exists(), f"{Path(path).parent} outlived its copy"


def assert_no_secret_in_processes(observed: Observed) -> None:
    lines = observed.ps.lines_of(observed.spawns)
    assert lines, "no skopeo command line was seen in /proc"
    assert leaks("ps", (" ".join(line) for line in lines)) == []
    for spawn in observed.spawns:
        assert leaks("argv", spawn.argv) == []
        # Proxy credentials reach skopeo through the proxy variables, as the SPEC says (the
        # environment, unlike the command line, is private to the user); nothing else may.
        carriers = {k for k, v in spawn.env.items() if PROXY_PASSWORD in v}
        assert carriers <= PROXY_VARIABLES, carriers
        assert leaks("env", spawn.env.values(), allowed=["proxy password"]) == []


# --- the full run ------------------------------------------------------------------------------


@pytest.fixture
def source(registry_factory: Callable[..., RegistryServer]) -> RegistryServer:
    """The source needs the password (htpasswd), so the copy needs a source authfile."""
    return registry_factory(users={SOURCE_USER: SOURCE_PASSWORD})


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger at DEBUG, before the environment (and its robot) is set up."""
    caplog.set_level(logging.DEBUG)
    return caplog


def all_log_text(caplog: pytest.LogCaptureFixture) -> list[str]:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    records = [*caplog.get_records("setup"), *caplog.get_records("call")]
    assert records, "nothing was logged at all"
    return [formatter.format(record) for record in records]


def record_responses(client: httpx.AsyncClient) -> list[str]:
    seen: list[str] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        seen.append(f"{response.request.method} {response.request.url}\n{headers}\n{response.text}")

    client.event_hooks["response"].append(keep)
    return seen


async def database_rows(env: MirrorEnv) -> list[str]:
    """Every row of every table, read with raw SQL, as text."""
    async with env.runtime.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            query = "SELECT name FROM sqlite_master WHERE type = 'table'"
        else:
            query = (
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            )
        tables = [row[0] for row in await connection.execute(text(query))]
        rows = []
        for table in tables:
            result = await connection.execute(text(f'SELECT * FROM "{table}"'))
            rows += [f"{table}: {tuple(row)!r}" for row in result]
    assert any(row.startswith("org_mirror_configs:") for row in rows)
    return rows


async def push_with_a_missing_layer(source: RegistryServer) -> None:
    """``src/broken:v1`` whose manifest is served but whose layer is gone: skopeo fails."""
    image = images.make_image(layers=1)
    async with httpx.AsyncClient() as http:
        await images.upload_image(
            http, source.url, "src/broken", image, "v1", auth=(SOURCE_USER, SOURCE_PASSWORD)
        )
    digest = image.layers[0].digest.removeprefix("sha256:")
    blob = source.storage_dir / "docker/registry/v2/blobs/sha256" / digest[:2] / digest / "data"
    blob.unlink()


async def exercise_the_api(env: MirrorEnv) -> None:
    """Read everything, round-trip the config, and provoke errors next to the secrets."""
    client, url = env.client, env.url
    config = await env.config()
    assert config["has_external_registry_password"] is True
    assert config["external_registry_config"]["proxy"]["http_proxy"] == (
        "http://***@127.0.0.1:3128"
    )
    writable = {k: v for k, v in config.items() if k != "external_registry_type"}
    assert (await client.put(url, json=writable, headers=auth())).status_code == 200
    await client.get(f"{url}/repositories", params={"limit": "500"}, headers=auth())
    await client.post(f"{url}/verify", headers=auth())
    await client.get("/api/v1/organization/myorg", headers=auth())
    await client.get("/api/v1/organization/myorg/robots", headers=auth())
    await client.post(url, json={"external_registry_password": SOURCE_PASSWORD}, headers=auth())
    bad_proxy = {"proxy": {"http_proxy": f"ftp://u:{PROXY_PASSWORD}@proxy"}}
    await client.put(url, json={"external_registry_config": bad_proxy}, headers=auth())
    await client.put(url, json={"external_registry_password": [SOURCE_PASSWORD]}, headers=auth())
    robot = "/api/v1/organization/myorg/robots/robot"
    await client.put(robot, json={"token": ROBOT_PASSWORD, "extra": 1}, headers=auth())


@pytest.mark.usefixtures("debug_logs")
@pytest.mark.parametrize("db", ["postgresql", "sqlite"], indirect=True)
async def test_secrets_stay_out_of_logs_responses_database_and_command_lines(
    mirror_env: MirrorEnv, observed: Observed, caplog: pytest.LogCaptureFixture
) -> None:
    env = mirror_env
    responses = record_responses(env.client)
    async with httpx.AsyncClient(auth=(SOURCE_USER, SOURCE_PASSWORD)) as http:
        await images.seed(http, env.source.url, ["src/app", "src/tools/cli"], 2)
    await env.create_config(
        external_registry_username=SOURCE_USER,
        external_registry_password=SOURCE_PASSWORD,
        external_registry_config={"proxy": {"http_proxy": PROXY_URL, "no_proxy": "127.0.0.1"}},
    )
    await env.start_worker(copy_attempts=1)
    assert (await env.sync_now()).status_code == 204
    first = await env.wait_terminal()
    assert first["sync_status"] == "SUCCESS", first
    assert first["last_sync"]["tags_copied"] == 4
    await push_with_a_missing_layer(env.source)
    assert (await env.sync_now()).status_code == 204
    second = await env.wait_terminal()
    assert second["sync_status"] == "FAIL", second
    assert second["last_sync"]["tags_failed"] == 1
    await exercise_the_api(env)

    assert len(observed.spawns) == 3, "one batched sync per repository, then the failing copy"
    assert all(spawn.env.get("HTTP_PROXY") == PROXY_URL for spawn in observed.spawns)
    assert_authfiles_private_and_gone(observed.spawns)
    assert_no_secret_in_processes(observed)
    logs, rows = all_log_text(caplog), await database_rows(env)
    assert any(line.startswith("orgmirror.sync INFO sync batch src/app") for line in logs)
    assert any('"has_external_registry_password":true' in body for body in responses)
    assert any("v1:" in row for row in rows if row.startswith("org_mirror_configs:"))
    assert leaks("API response", responses) == []
    assert leaks("database row", rows) == []
    assert leaks("log record", logs) == []


# --- copies that end badly -------------------------------------------------------------------

PROJECT = "private-proj"


async def hung_private_harbor(harbor: HarborEmulator) -> None:
    """A private project only SOURCE_USER may read, whose blob downloads never answer."""
    harbor.add_user(SOURCE_USER, SOURCE_PASSWORD)
    harbor.add_project(PROJECT, members=[SOURCE_USER])
    async with httpx.AsyncClient(auth=harbor.backdoor()) as http:
        await images.push_image(http, harbor.registry.url, f"{PROJECT}/app", "v1")
    harbor.faults.hang(rf"/v2/{PROJECT}/.*/blobs/.*", method="GET")


async def test_authfiles_are_removed_after_timed_out_and_cancelled_copies(
    mirror_env: MirrorEnv, harbor: HarborEmulator, observed: Observed
) -> None:
    spawns = observed.spawns
    env = mirror_env
    await hung_private_harbor(harbor)
    await env.create_config(
        external_registry_type="harbor",
        external_registry_url=harbor.url,
        external_namespace=PROJECT,
        external_registry_username=SOURCE_USER,
        external_registry_password=SOURCE_PASSWORD,
    )
    # The API's minimum is 30 s; the worker honours whatever is stored.
    async with env.runtime.sessionmaker() as session:
        await session.execute(update(OrgMirrorConfig).values(skopeo_timeout=2))
        await session.commit()
    worker = await env.start_worker(copy_attempts=1)
    assert (await env.sync_now()).status_code == 204
    timed_out = await env.wait_terminal(seconds=30)
    assert timed_out["sync_status"] == "FAIL", timed_out
    [repo] = await env.repositories()
    assert "timed out" in repo["status_message"] or "deadline" in repo["status_message"]
    assert len(spawns) == 1

    async with env.runtime.sessionmaker() as session:
        await session.execute(update(OrgMirrorConfig).values(skopeo_timeout=300))
        await session.commit()
    assert (await env.sync_now()).status_code == 204
    await env.wait_for(_started(spawns, 2), seconds=30)
    assert (await env.client.post(f"{env.url}/sync-cancel", headers=auth())).status_code == 204

    async def stopped() -> bool:
        return not worker._repos and not _running(spawns)

    await env.wait_for(stopped, seconds=10)
    assert_authfiles_private_and_gone(spawns)
    assert_no_secret_in_processes(observed)


def _started(seen: list[Spawn], count: int) -> Callable[[], Any]:
    async def check() -> bool:
        return len(seen) >= count

    return check


def _running(seen: list[Spawn]) -> bool:
    return any(_cmdline(str(spawn.pid)) for spawn in seen)


async def test_authfiles_are_removed_when_a_copy_that_ignores_sigterm_is_killed(
    tmp_path: Path, observed: Observed
) -> None:
    """skopeo honours its own --command-timeout; one that hangs regardless (this stand-in
    ignores SIGTERM) is killed at the time limit, and its authfiles still go."""
    stubborn = tmp_path / "skopeo"
    stubborn.write_text("#!/bin/sh\ntrap '' TERM\nsleep 60 &\nwait\nwait\n")
    stubborn.chmod(0o700)
    side = RegistryAuth("127.0.0.1:1", "someone", SOURCE_PASSWORD)
    source = CopySide("docker://127.0.0.1:1/src/app:v1", side, tls_verify=False)
    target = CopySide("docker://127.0.0.1:2/myorg/app:v1", side, tls_verify=False)

    started = time.monotonic()
    result = await SkopeoRunner(str(stubborn)).copy(source, target, time_limit=1)

    assert result.timed_out
    assert time.monotonic() - started < 10
    [spawn] = observed.spawns
    assert len(spawn.authfiles) == 2
    assert _cmdline(str(spawn.pid)) == [], "the process was killed and reaped"
    assert_authfiles_private_and_gone(observed.spawns)
    assert_no_secret_in_processes(observed)
