"""User accounts and their API keys: ``crowdsky user ...``."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from crowdsky.cli.database_access import (
    DatabaseUrlOption,
    DataDirOption,
    db_session,
    server_settings,
)
from crowdsky.cli.exits import fail

user_app = typer.Typer(help="User accounts and API keys.", no_args_is_help=True)
api_key_app = typer.Typer(
    help="Per-user API keys (shown once, stored hashed).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add the ``user`` command family."""
    user_app.add_typer(api_key_app, name="api-key")
    app.add_typer(user_app, name="user")


@user_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="User name (3-64 letters, digits, . _ -).")],
    email: Annotated[str, typer.Option("--email", help="Email address.")],
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            envvar="CROWDSKY_PASSWORD",
            help="Password (else CROWDSKY_PASSWORD, else asked).",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create a user who can upload (password hashed with argon2)."""
    from crowdsky.accounts import AccountError, create_user
    from crowdsky.db.types import utcnow

    with db_session(server_settings(data_dir=data_dir, database_url=database_url)) as session:
        if password is None:  # asked once the database is known to be there
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        try:
            user = create_user(session, utcnow(), username=name, email=email, password=password)
        except AccountError as exc:
            raise fail(str(exc)) from exc
    typer.echo(f"created user {user.username!r} (id {user.id})")


@user_app.command("list")
def list_all(
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """List users."""
    from crowdsky.accounts import list_users

    with db_session(server_settings(data_dir=data_dir, database_url=database_url)) as session:
        for user in list_users(session):
            state = "active" if user.is_active else "inactive"
            typer.echo(f"{user.id}\t{user.username}\t{user.email}\t{state}")


@user_app.command("deactivate")
def deactivate(
    name: Annotated[str, typer.Argument(help="User name.")],
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Deactivate a user: logins and API keys stop working."""
    from crowdsky.accounts import AccountError, set_user_active
    from crowdsky.db.types import utcnow

    with db_session(server_settings(data_dir=data_dir, database_url=database_url)) as session:
        try:
            set_user_active(session, utcnow(), name, False)
        except AccountError as exc:
            raise fail(str(exc)) from exc
    typer.echo(f"deactivated {name!r}")


@api_key_app.command("create")
def create_key(
    user: Annotated[str, typer.Argument(help="User name.")],
    name: Annotated[str, typer.Argument(help="Key name, e.g. laptop.")],
    expires_days: Annotated[
        float | None, typer.Option("--expires-days", min=0.001, help="Expire after N days.")
    ] = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    from crowdsky.accounts import AccountError, create_api_key
    from crowdsky.db.types import utcnow

    expires = timedelta(days=expires_days) if expires_days else None
    with db_session(server_settings(data_dir=data_dir, database_url=database_url)) as session:
        try:
            issued = create_api_key(session, utcnow(), username=user, name=name, expires_in=expires)
        except AccountError as exc:
            raise fail(str(exc)) from exc
    typer.echo(issued.key)
    until = f", expires {issued.expires_at:%Y-%m-%d %H:%M} UTC" if issued.expires_at else ""
    typer.echo(f"API key {name!r} for {user!r} shown once{until}.", err=True)


@api_key_app.command("revoke")
def revoke_key(
    user: Annotated[str, typer.Argument(help="User name.")],
    name: Annotated[str, typer.Argument(help="Key name.")],
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Revoke an API key; it stops working at once."""
    from crowdsky.accounts import AccountError, revoke_api_key
    from crowdsky.db.types import utcnow

    with db_session(server_settings(data_dir=data_dir, database_url=database_url)) as session:
        try:
            revoke_api_key(session, utcnow(), username=user, name=name)
        except AccountError as exc:
            raise fail(str(exc)) from exc
    typer.echo(f"revoked key {name!r} of {user!r}")


@api_key_app.command("list")
def list_keys(
    user: Annotated[str, typer.Argument(help="User name.")],
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """List a user's keys (names and prefixes, never secrets)."""
    from crowdsky.accounts import AccountError, list_api_keys
    from crowdsky.db.types import utcnow

    now = utcnow()
    with db_session(server_settings(data_dir=data_dir, database_url=database_url)) as session:
        try:
            keys = list_api_keys(session, username=user)
        except AccountError as exc:
            raise fail(str(exc)) from exc
    for key in keys:
        if key.revoked_at:
            state = f"revoked {key.revoked_at:%Y-%m-%d}"
        elif key.expires_at and key.expires_at <= now:
            state = f"expired {key.expires_at:%Y-%m-%d %H:%M}"
        elif key.expires_at:
            state = f"expires {key.expires_at:%Y-%m-%d %H:%M}"
        else:
            state = "active"
        typer.echo(f"{key.name}\t{key.prefix}…\t{state}")
