"""The ``orgmirror`` command as a new user meets it: real processes, real HTTP, a clean env.

Embedded default: ``serve`` in an empty directory creates its SQLite file and private secrets,
``token`` mints what the server accepts, the org-mirror walk-through works over HTTP and
survives a restart, and ``org`` manages orgs beside the running server (SQLite WAL).
Production mode (``ORGMIRROR_DATABASE_URL``): no generated secrets, ``migrate`` then ``serve``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import stat
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from jose import jwt

from tests.conftest import create_pg_database, drop_pg_database, pg_url
from tests.support.service import OrgmirrorServer, clean_env, free_port, run_cli

T = TypeVar("T")
DATA_DIR = "orgmirror-data"
ORG = "acme"
MIRROR = f"/api/v1/organization/{ORG}/mirror"
PROXY = "http://proxyuser:proxypass@8.8.4.4:3128"  # a public address: no DNS needed


# --- helpers ---------------------------------------------------------------------------------


def in_thread(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a private loop (these tests are synchronous)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(work())).result()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cli_token(username: str, *, cwd: Path, env: dict[str, str]) -> str:
    result = run_cli("token", username, cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert len(token.split(".")) == 3, f"not a JWT: {result.stdout!r}"
    return token


def embedded_token(workdir: Path, username: str) -> str:
    """A token signed with the secret the embedded server generated (no CLI round trip)."""
    secret = json.loads((workdir / DATA_DIR / "secrets.json").read_text())["jwt_secret"]
    now = int(time.time())
    claims = {"sub": username, "scope": "org:admin", "iat": now, "exp": now + 600}
    return jwt.encode(claims, secret, algorithm="HS256")


def mirror_body() -> dict[str, Any]:
    return {
        "external_registry_type": "harbor",
        # A public IP literal: no DNS needed (the machine is offline) and allowed by SSRF rules.
        "external_registry_url": "http://8.8.8.8",
        "external_namespace": "library",
        "robot_username": f"{ORG}+mirrorbot",
        "visibility": "Private",
        "sync_interval": 3600,
        "sync_start_date": "2030-01-01T00:00:00Z",
        "external_registry_username": "reader",
        "external_registry_password": "source-password",
        "external_registry_config": {"verify_tls": True, "proxy": {"https_proxy": PROXY}},
        "repository_filters": ["app-*", "!app-legacy"],
    }


def assert_one_line_error(result: Any, *needles: str) -> None:
    assert result.returncode != 0, result.stdout
    message = result.stderr.strip()
    assert "Traceback" not in result.stderr, result.stderr
    assert len(message.splitlines()) == 1, result.stderr
    for needle in needles:
        assert needle in message, message


def org_lines(cwd: Path, env: dict[str, str]) -> list[str]:
    result = run_cli("org", "list", cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


# --- fixtures --------------------------------------------------------------------------------


def new_workdir(base: Path) -> Path:
    workdir = base / "work"
    workdir.mkdir()
    return workdir


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return new_workdir(tmp_path)


@pytest.fixture(scope="module")
def shared_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return new_workdir(tmp_path_factory.mktemp("cli"))


@pytest.fixture(scope="module")
def shared_env(shared_workdir: Path) -> dict[str, str]:
    return clean_env(shared_workdir)


@pytest.fixture(scope="module")
def shared_server(shared_workdir: Path, shared_env: dict[str, str]) -> Iterator[OrgmirrorServer]:
    """One embedded server for the tests that do not restart it."""
    with OrgmirrorServer(
        cwd=shared_workdir, env=shared_env, log_dir=shared_workdir.parent
    ) as server:
        yield server


@pytest.fixture(scope="module")
def existing_org(
    shared_server: OrgmirrorServer, shared_workdir: Path, shared_env: dict[str, str]
) -> str:
    result = run_cli(
        "org", "create", "existing", "--admin", "bob", cwd=shared_workdir, env=shared_env
    )
    assert result.returncode == 0, result.stderr
    return "existing"


@pytest.fixture
def pg_database_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (trust auth on 127.0.0.1), dropped afterwards."""
    name = in_thread(create_pg_database)
    try:
        yield pg_url(name)
    finally:
        in_thread(lambda: drop_pg_database(name))


# --- embedded default ------------------------------------------------------------------------


def test_serve_in_an_empty_directory_creates_database_and_private_secrets(
    shared_server: OrgmirrorServer, shared_workdir: Path
) -> None:
    data = shared_workdir / DATA_DIR
    assert (data / "orgmirror.db").read_bytes()[:16] == b"SQLite format 3\x00"
    secrets_file = data / "secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    generated = json.loads(secrets_file.read_text())
    assert generated["jwt_secret"]
    assert len(base64.urlsafe_b64decode(generated["encryption_key"])) == 32
    assert {p.name for p in data.iterdir()} <= {
        "orgmirror.db",
        "orgmirror.db-wal",
        "orgmirror.db-shm",
        "secrets.json",
    }


def test_serve_tells_how_to_get_a_token_and_where_the_docs_are(
    shared_server: OrgmirrorServer,
) -> None:
    assert "orgmirror token" in shared_server.stdout
    assert f"{shared_server.url}/docs" in shared_server.stdout
    assert "embedded" in shared_server.stdout


def test_cli_token_is_accepted_and_a_foreign_token_is_not(
    shared_server: OrgmirrorServer, shared_workdir: Path, shared_env: dict[str, str]
) -> None:
    token = cli_token("alice", cwd=shared_workdir, env=shared_env)
    foreign = jwt.encode({"sub": "alice", "scope": "org:admin", "exp": 2**40}, "x" * 48)
    with httpx.Client(base_url=shared_server.url, timeout=10) as api:
        created = api.post(
            "/api/v1/organization/", json={"name": "tokenorg"}, headers=bearer(token)
        )
        assert created.status_code == 201, created.text
        assert created.json()["admins"] == ["alice"]
        refused = api.get("/api/v1/organization/tokenorg", headers=bearer(foreign))
        assert refused.status_code == 401, refused.text
        assert refused.json()["title"] == "invalid_token"


def test_org_commands_manage_orgs_and_admins_beside_the_running_server(
    shared_server: OrgmirrorServer, shared_workdir: Path, shared_env: dict[str, str]
) -> None:
    cwd, env = shared_workdir, shared_env
    created = run_cli("org", "create", "cliorg", "--admin", "bob", cwd=cwd, env=env)
    assert created.returncode == 0, created.stderr
    assert "created organization cliorg (admins: bob)" in created.stdout
    bob, carol = embedded_token(cwd, "bob"), embedded_token(cwd, "carol")
    with httpx.Client(base_url=shared_server.url, timeout=10) as api:
        seen = api.get("/api/v1/organization/cliorg", headers=bearer(bob))
        assert seen.status_code == 200, seen.text
        assert seen.json()["admins"] == ["bob"]

        added = run_cli("org", "add-admin", "cliorg", "carol", cwd=cwd, env=env)
        assert added.returncode == 0, added.stderr
        assert "cliorg\tadmins: bob, carol" in org_lines(cwd, env)

        removed = run_cli("org", "remove-admin", "cliorg", "bob", cwd=cwd, env=env)
        assert removed.returncode == 0, removed.stderr
        assert api.get("/api/v1/organization/cliorg", headers=bearer(bob)).status_code == 403
        assert api.get("/api/v1/organization/cliorg", headers=bearer(carol)).status_code == 200
    assert "cliorg\tadmins: carol" in org_lines(cwd, env)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        pytest.param(("create", "existing"), ("existing", "already exists"), id="duplicate-org"),
        pytest.param(("add-admin", "ghost", "bob"), ("ghost", "does not exist"), id="add-unknown"),
        pytest.param(("remove-admin", "ghost", "bob"), ("ghost",), id="remove-unknown-org"),
        pytest.param(("remove-admin", "existing", "nobody"), ("nobody",), id="remove-non-admin"),
    ],
)
def test_org_command_errors_exit_non_zero_with_one_line_and_no_traceback(
    existing_org: str,
    shared_workdir: Path,
    shared_env: dict[str, str],
    args: tuple[str, ...],
    needles: tuple[str, ...],
) -> None:
    result = run_cli("org", *args, cwd=shared_workdir, env=shared_env)
    assert_one_line_error(result, *needles)


def test_org_create_before_the_first_serve_works_or_says_what_to_do(
    workdir: Path,
) -> None:
    result = run_cli(
        "org", "create", "early", "--admin", "bob", cwd=workdir, env=clean_env(workdir)
    )
    if result.returncode != 0:
        assert_one_line_error(result, "migrate")
    else:
        assert "early\tadmins: bob" in org_lines(workdir, clean_env(workdir))


def walk_config_lifecycle(api: httpx.Client) -> None:
    """Org, robot, create/GET/PUT config, list repositories."""
    assert api.post("/api/v1/organization/", json={"name": ORG}).status_code == 201
    robot = api.put(
        f"/api/v1/organization/{ORG}/robots/mirrorbot",
        json={"description": "pushes mirrored images", "token": "robot-secret"},
    )
    assert robot.status_code == 201, robot.text
    created = api.post(MIRROR, json=mirror_body())
    assert created.status_code == 201, created.text
    assert created.headers["location"].endswith(MIRROR)
    config = created.json()
    assert config["visibility"] == "private"
    assert config["sync_status"] == "NEVER_RUN"
    assert config["has_external_registry_password"] is True
    assert "source-password" not in created.text
    assert "proxypass" not in created.text
    assert config["external_registry_config"]["proxy"]["https_proxy"] == ("http://***@8.8.4.4:3128")
    assert api.get(MIRROR).json() == config
    updated = api.put(MIRROR, json={"sync_interval": 7200, "is_enabled": False})
    assert updated.status_code == 200, updated.text
    assert (updated.json()["sync_interval"], updated.json()["is_enabled"]) == (7200, False)
    listing = api.get(f"{MIRROR}/repositories")
    assert listing.status_code == 200, listing.text
    assert listing.json() == {
        "repositories": [],
        "page": 1,
        "limit": 100,
        "total": 0,
        "has_next": False,
    }


def walk_sync_controls(api: httpx.Client) -> None:
    """sync-now, again (404), coalesced (204), cancel, cancel again (400)."""
    assert api.post(f"{MIRROR}/sync-now").status_code == 204
    assert api.get(MIRROR).json()["sync_status"] == "SYNC_NOW"
    again = api.post(f"{MIRROR}/sync-now")
    assert again.status_code == 404, again.text
    assert again.json()["title"] == "not_found"
    coalesced = api.post(f"{MIRROR}/sync-now", params={"coalesce": "true"})
    assert coalesced.status_code == 204, coalesced.text
    assert api.post(f"{MIRROR}/sync-cancel").status_code == 204
    assert api.get(MIRROR).json()["sync_status"] == "CANCEL"
    twice = api.post(f"{MIRROR}/sync-cancel")
    assert twice.status_code == 400, twice.text
    assert "already cancelled" in twice.json()["detail"]


def test_mirror_walkthrough_over_http_survives_a_restart(workdir: Path, tmp_path: Path) -> None:
    env = clean_env(workdir)
    server = OrgmirrorServer(cwd=workdir, env=env, log_dir=tmp_path)
    secrets_file = workdir / DATA_DIR / "secrets.json"
    with server:
        token = cli_token("alice", cwd=workdir, env=env)
        with httpx.Client(base_url=server.url, headers=bearer(token), timeout=10) as api:
            walk_config_lifecycle(api)
            walk_sync_controls(api)
            before = api.get(MIRROR).json()
    generated = secrets_file.read_bytes()
    assert f"{ORG}\tadmins: alice" in org_lines(workdir, env)  # the CLI, while stopped

    with server:  # same port, same data directory
        assert secrets_file.read_bytes() == generated
        with httpx.Client(base_url=server.url, headers=bearer(token), timeout=10) as api:
            after = api.get(MIRROR)
            assert after.status_code == 200, after.text
            assert after.json() == before  # incl. the proxy, decrypted with the same key
            assert api.delete(MIRROR).status_code == 204
            gone = api.get(MIRROR)
            assert gone.status_code == 404, gone.text
            assert gone.json()["title"] == "not_found"


# --- production mode -------------------------------------------------------------------------


def production_env(workdir: Path, database_url: str, *, with_secrets: bool) -> dict[str, str]:
    settings = {"ORGMIRROR_DATABASE_URL": database_url}
    if with_secrets:
        settings["ORGMIRROR_JWT_SECRET"] = secrets.token_urlsafe(48)
        settings["ORGMIRROR_ENCRYPTION_KEY"] = base64.urlsafe_b64encode(
            secrets.token_bytes(32)
        ).decode()
    return clean_env(workdir, **settings)


def test_production_serve_without_secrets_refuses_naming_them(
    workdir: Path, pg_database_url: str
) -> None:
    env = production_env(workdir, pg_database_url, with_secrets=False)
    result = run_cli("serve", "--port", str(free_port()), cwd=workdir, env=env, timeout=20)
    assert_one_line_error(result, "ORGMIRROR_JWT_SECRET", "ORGMIRROR_ENCRYPTION_KEY")
    assert not (workdir / DATA_DIR).exists(), "secrets must never be generated in production"


async def org_names(database_url: str) -> list[str]:
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(dsn)
    try:
        return [row["name"] for row in await conn.fetch("SELECT name FROM organizations")]
    finally:
        await conn.close()


def test_production_migrate_then_serve_works_on_postgresql(
    workdir: Path, tmp_path: Path, pg_database_url: str
) -> None:
    env = production_env(workdir, pg_database_url, with_secrets=True)
    migrated = run_cli("migrate", cwd=workdir, env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert "up to date" in migrated.stdout
    with OrgmirrorServer(cwd=workdir, env=env, log_dir=tmp_path) as server:
        assert "embedded" not in server.stdout
        token = cli_token("alice", cwd=workdir, env=env)
        with httpx.Client(base_url=server.url, headers=bearer(token), timeout=10) as api:
            created = api.post("/api/v1/organization/", json={"name": "prodorg"})
            assert created.status_code == 201, created.text
    assert in_thread(lambda: org_names(pg_database_url)) == ["prodorg"]
    assert not (workdir / DATA_DIR).exists(), "secrets must never be generated in production"
