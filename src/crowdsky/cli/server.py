"""`crowdsky server`, `crowdsky db upgrade` and `crowdsky cleanup`."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from crowdsky.cli.database_access import (
    DatabaseUrlOption,
    DataDirOption,
    db_session,
    safe_url,
    server_settings,
    unusable_database_message,
)
from crowdsky.cli.exits import fail

db_app = typer.Typer(help="Database administration.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the server commands."""
    app.command("server")(serve)
    app.command("cleanup")(cleanup)
    app.add_typer(db_app, name="db")


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes (not for SQLite).")] = 1,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
) -> None:
    """Serve the worker and upload APIs (uvicorn). SQLite databases are migrated on start."""
    import uvicorn

    from crowdsky.db import is_sqlite
    from crowdsky.logs import configure_logging

    settings = server_settings(data_dir=data_dir, database_url=database_url)
    if workers > 1 and is_sqlite(settings.resolved_database_url):
        raise fail("several server processes need PostgreSQL or MariaDB, not SQLite")
    configure_logging(log_level)
    if workers > 1:
        # uvicorn re-imports the factory in each process; settings come from the environment,
        # so the options given here are passed on through it.
        if data_dir is not None:
            os.environ["CROWDSKY_DATA_DIR"] = str(data_dir)
        if database_url is not None:
            os.environ["CROWDSKY_DATABASE_URL"] = database_url
        uvicorn.run(
            "crowdsky.server.asgi:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            log_level=log_level,
        )
        return
    from crowdsky.server import create_app

    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, log_level=log_level)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create or migrate the database to the newest schema.

    SQLite (the default, in the data folder) is created when missing; a PostgreSQL or
    MariaDB database must exist (createdb / CREATE DATABASE) and is given its tables.
    """
    from crowdsky.db import prepare_sqlite, upgrade_database

    settings = server_settings(data_dir=data_dir, database_url=database_url)
    url = settings.resolved_database_url
    prepare_sqlite(url, settings.data_dir, migrate=False)
    try:
        upgrade_database(url, revision)
    except Exception as exc:  # report driver errors (unreachable DB, bad credentials) plainly
        message = unusable_database_message(settings, f"could not migrate {safe_url(url)}: {exc}")
        raise fail(message) from exc
    typer.echo(f"database {safe_url(url)} is at revision {revision}")


def cleanup(data_dir: DataDirOption = None, database_url: DatabaseUrlOption = None) -> None:
    """Expire abandoned uploads, reap expired leases and delete raws no job needs."""
    from crowdsky.cleanup import run_cleanup
    from crowdsky.db.types import utcnow
    from crowdsky.storage import selection

    settings = server_settings(data_dir=data_dir, database_url=database_url)
    with db_session(settings) as session:  # refuses a missing database before any mkdir
        raw_store = selection.open_raw_store(settings)
        report = run_cleanup(
            session,
            utcnow(),
            raw_store=raw_store,
            upload_expiry_hours=settings.upload_expiry_hours,
            failed_raw_retention_hours=settings.failed_raw_retention_hours,
            restack_window_hours=settings.restack_window_hours,
            backoff_seconds=settings.retry_backoff_seconds,
        )
    aborted = selection.abort_stale_uploads(raw_store, utcnow())
    selection.close_raw_store(raw_store)
    typer.echo(report.summary() + (f", {aborted} stale uploads aborted" if aborted else ""))
