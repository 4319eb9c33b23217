"""The ``orgmirror`` command: serve | migrate | token | org."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app import ci, logs, migrations
from app.config import ConfigurationError, Settings, get_settings
from app.errors import AppError
from app.runtime import Runtime
from app.security import ADMIN_SCOPE, mint_token
from app.services import organizations

T = TypeVar("T")

cli = typer.Typer(
    help="orgmirror: organization-level container registry mirroring.",
    no_args_is_help=True,
    add_completion=False,
)
org_cli = typer.Typer(help="Manage organizations and their admins.", no_args_is_help=True)
cli.add_typer(org_cli, name="org")


def _settings() -> Settings:
    try:
        return get_settings()
    except ConfigurationError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    with_worker: Annotated[
        bool | None,
        typer.Option(
            "--with-worker/--no-worker",
            help="Run a mirror worker in this process (default: yes on the embedded SQLite "
            "default, no with ORGMIRROR_DATABASE_URL).",
        ),
    ] = None,
) -> None:
    """Run the API (on the embedded default, migrate the SQLite database first)."""
    import uvicorn

    from app.main import create_app

    settings = _settings()
    if settings.embedded:
        migrations.upgrade(settings.effective_database_url)
        typer.echo(f"orgmirror: embedded mode, data in {settings.data_dir.resolve()}")
    worker = settings.embedded if with_worker is None else with_worker
    typer.echo(
        f"orgmirror: API on http://{host}:{port}  (Swagger UI: http://{host}:{port}/docs)\n"
        f"orgmirror: mirror worker in this process: {'yes' if worker else 'no'}; "
        f"target registry: {settings.target_registry}\n"
        "orgmirror: get a token with:  orgmirror token admin"
    )
    _configure_logging(settings)
    app = create_app(settings=settings, with_worker=worker)
    uvicorn.run(app, host=host, port=port, log_config=None)


@cli.command()
def worker(
    metrics_port: Annotated[
        int | None, typer.Option(help="Serve this worker's Prometheus metrics on this port.")
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Address for --metrics-port.")] = "127.0.0.1",
) -> None:
    """Run a mirror worker (any number of them may share one PostgreSQL database)."""
    from prometheus_client import start_http_server

    from app.metrics import REGISTRY
    from app.workers.worker import Worker

    settings = _settings()
    _configure_logging(settings)
    if metrics_port is not None:
        start_http_server(metrics_port, addr=metrics_host, registry=REGISTRY)

    async def run() -> None:
        runtime = Runtime.build(settings)
        mirror_worker = Worker(runtime)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, mirror_worker.stop)
        try:
            await mirror_worker.run()
        finally:
            await runtime.close()

    asyncio.run(run())


@cli.command("sync-now")
def sync_now(
    org: Annotated[str, typer.Argument(help="The organization whose mirror to sync.")],
    url: Annotated[
        str, typer.Option(envvar="ORGMIRROR_URL", help="Base URL of the orgmirror API.")
    ] = "http://127.0.0.1:8080",
    token: Annotated[
        str | None,
        typer.Option(envvar="ORGMIRROR_TOKEN", help="Bearer token (or ORGMIRROR_TOKEN)."),
    ] = None,
    wait: Annotated[bool, typer.Option(help="Follow the run until it ends.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait at most.", min=1)] = 3600,
    interval: Annotated[float, typer.Option(help="Seconds between polls.", min=0.1)] = 2.0,
) -> None:
    """Trigger a sync (coalesced) and, with --wait, follow it: exit 0 on SUCCESS, 1 on FAIL,
    2 on CANCEL, 3 on timeout, 4 when the API refuses or cannot be reached."""
    if not token:
        typer.secho("error: no token: pass --token or set ORGMIRROR_TOKEN", fg="red", err=True)
        raise typer.Exit(ci.EXIT_ERROR)
    options = ci.Follow(url, org, token, wait, timeout, interval)
    raise typer.Exit(ci.run(options, echo=typer.echo))


def _configure_logging(settings: Settings) -> None:
    logs.configure(log_format=settings.log_format, level=settings.log_level)


@cli.command()
def migrate() -> None:
    """Upgrade the database schema to the latest migration (alembic upgrade head)."""
    settings = _settings()
    migrations.upgrade(settings.effective_database_url)
    typer.echo("orgmirror: database schema is up to date")


@cli.command()
def token(
    username: Annotated[str, typer.Argument(help="The token's subject (user name).")],
    scope: Annotated[list[str], typer.Option(help="Scopes to grant (repeatable).")] = [  # noqa: B006
        ADMIN_SCOPE
    ],
    expires_in: Annotated[int, typer.Option(help="Lifetime in seconds.", min=60)] = 86400,
) -> None:
    """Print a bearer token signed with the configured HS256 secret."""
    settings = _settings()
    try:
        value = mint_token(
            settings,
            username=username,
            scopes=scope,
            lifetime_seconds=expires_in,
            now=int(time.time()),
        )
    except ValueError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    typer.echo(value)


def _with_session(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    settings = _settings()
    if settings.embedded:
        migrations.upgrade(settings.effective_database_url)

    async def run() -> T:
        runtime = Runtime.build(settings)
        try:
            async with runtime.sessionmaker() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await runtime.close()

    try:
        return asyncio.run(run())
    except AppError as exc:
        typer.secho(f"error: {exc.detail}", fg="red", err=True)
        raise typer.Exit(1) from exc
    except DBAPIError as exc:
        typer.secho(
            f"error: database failure ({exc.orig.__class__.__name__}); is the schema "
            "migrated? run 'orgmirror migrate'",
            fg="red",
            err=True,
        )
        raise typer.Exit(1) from exc


@org_cli.command("create")
def org_create(
    name: str,
    admin: Annotated[list[str], typer.Option(help="Admin user name (repeatable).")] = [],  # noqa: B006
) -> None:
    """Create an organization."""
    org = _with_session(lambda s: organizations.create_org(s, name=name, admins=admin, actor="cli"))
    typer.echo(f"created organization {org.name} (admins: {', '.join(org.admins) or 'none'})")


@org_cli.command("add-admin")
def org_add_admin(name: str, username: str) -> None:
    """Make USERNAME an admin of organization NAME."""
    _with_session(lambda s: organizations.add_admin(s, name=name, username=username, actor="cli"))
    typer.echo(f"{username} administers {name}")


@org_cli.command("remove-admin")
def org_remove_admin(name: str, username: str) -> None:
    """Remove USERNAME from the admins of organization NAME."""
    _with_session(
        lambda s: organizations.remove_admin(s, name=name, username=username, actor="cli")
    )
    typer.echo(f"{username} no longer administers {name}")


@org_cli.command("list")
def org_list() -> None:
    """List organizations and their admins."""
    for org in _with_session(organizations.list_orgs):
        typer.echo(f"{org.name}\tadmins: {', '.join(org.admins) or '-'}")


def main() -> None:
    cli(prog_name="orgmirror")


if __name__ == "__main__":
    main()
