"""Administration commands: per-worker tokens."""

from __future__ import annotations

from typing import Annotated

import typer

from crowdsky.cli.database_access import (
    DatabaseUrlOption,
    DataDirOption,
    db_session,
    server_settings,
)
from crowdsky.cli.exits import fail

worker_token_app = typer.Typer(help="Per-worker API tokens.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the administration commands."""
    app.add_typer(worker_token_app, name="worker-token")


@worker_token_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Worker name, e.g. zeus-01.")],
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create a token for a worker and print it once (only its hash is stored)."""
    from crowdsky.accounts import WorkerTokenError, create_worker_token
    from crowdsky.db.types import utcnow

    with db_session(server_settings(data_dir=data_dir, database_url=database_url)) as session:
        try:
            issued = create_worker_token(session, utcnow(), name)
        except WorkerTokenError as exc:
            raise fail(str(exc)) from exc
    typer.echo(issued.token)
    typer.echo(
        f"Token for worker {issued.name!r} shown once; put it in that worker's WORKER_API_KEY.",
        err=True,
    )


@worker_token_app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="Worker name.")],
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Revoke a worker's token; it stops working at once."""
    from crowdsky.accounts import WorkerTokenError, revoke_worker_token
    from crowdsky.db.types import utcnow

    with db_session(server_settings(data_dir=data_dir, database_url=database_url)) as session:
        try:
            revoke_worker_token(session, utcnow(), name)
        except WorkerTokenError as exc:
            raise fail(str(exc)) from exc
    typer.echo(f"revoked the token of worker {name!r}")


@worker_token_app.command("list")
def list_tokens(
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """List worker tokens (names and prefixes, never secrets)."""
    from crowdsky.accounts import list_worker_tokens

    with db_session(server_settings(data_dir=data_dir, database_url=database_url)) as session:
        for info in list_worker_tokens(session):
            state = f"revoked {info.revoked_at:%Y-%m-%d}" if info.revoked_at else "active"
            typer.echo(f"{info.name}\t{info.prefix}…\t{state}")
