"""How administration commands reach the server's database: options, settings, sessions.

Administration commands take ``--data-dir`` and ``--database-url`` (over
``CROWDSKY_DATA_DIR`` and ``CROWDSKY_DATABASE_URL``) and never create a database:
only ``crowdsky db upgrade`` and ``crowdsky server`` do; when one is missing or
behind, the message says what to run. The database stack is imported inside the
functions that need it, so commands that never touch a database (``crowdsky stack``,
``crowdsky upload``) start sooner (figure in docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from crowdsky.cli.exits import fail

if TYPE_CHECKING:  # the database stack is imported by the commands that use it
    from sqlalchemy.orm import Session

    from crowdsky.config import ServerSettings

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Server data folder (the embedded SQLite database is in it). "
        "Overrides CROWDSKY_DATA_DIR.",
        show_default=False,
    ),
]
DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Database URL (postgresql://..., mariadb://..., sqlite:///...). "
        "Overrides CROWDSKY_DATABASE_URL.",
        show_default=False,
    ),
]


def server_settings(**overrides: object) -> ServerSettings:
    """Load server settings or exit with a message naming the bad variable."""
    from crowdsky.config import SettingsError, load_server_settings

    try:
        return load_server_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        raise fail(str(exc)) from exc


def safe_url(url: str) -> str:
    """A database URL with its password hidden."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL (None for an in-memory database or another backend)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _where(settings: ServerSettings) -> str:
    if settings.database_url:
        return f"--database-url {safe_url(settings.database_url)}"
    return f"--data-dir {settings.data_dir}"


def missing_database_message(settings: ServerSettings, path: Path) -> str:
    """What to say when the SQLite file an admin command needs is not there."""
    return (
        f"no CrowdSky database at {path}. Create it with `crowdsky db upgrade {_where(settings)}` "
        "(`crowdsky server` also creates it on start), or point --data-dir or --database-url "
        "(CROWDSKY_DATA_DIR, CROWDSKY_DATABASE_URL) at the server's database"
    )


def unusable_database_message(settings: ServerSettings, error: str) -> str:
    """What to say when a server database is missing, unreachable or not migrated."""
    lowered = error.lower()
    if "does not exist" in lowered or "unknown database" in lowered:
        return (
            f"{error}\nThe database does not exist yet: create it on the database server "
            "(PostgreSQL: `createdb NAME`; MariaDB: `CREATE DATABASE NAME`), then run "
            f"`crowdsky db upgrade {_where(settings)}`"
        )
    if "schema revision" in lowered:
        return error.replace(
            "run `crowdsky db upgrade` with the same CROWDSKY_DATABASE_URL",
            f"run `crowdsky db upgrade {_where(settings)}`",
        )
    return error


@contextmanager
def db_session(settings: ServerSettings) -> Iterator[Session]:
    """A session on the configured database, which must exist already.

    An SQLite file is migrated to the newest schema first, as the server does on start;
    a server database must be at the newest schema (``crowdsky db upgrade``). A missing
    database is never created here: the command exits with what to run instead.
    """
    from crowdsky.db import create_db_engine, make_session_factory, prepare_sqlite
    from crowdsky.db.migrate import SchemaNotCurrent, verify_schema

    url = settings.resolved_database_url
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        raise fail(missing_database_message(settings, path))
    engine = create_db_engine(url)
    try:
        try:
            prepare_sqlite(url, None, engine=engine)  # the file exists (checked above)
            verify_schema(engine)
        except SchemaNotCurrent as exc:
            raise fail(unusable_database_message(settings, str(exc))) from exc
        with make_session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()
