"""Run Alembic migrations programmatically (``crowdsky db upgrade``, SQLite auto-migrate)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from crowdsky.db.engine import create_db_engine, is_sqlite, normalize_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic configuration pointing at our migrations and the given database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would choke on '%' in passwords.
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def upgrade_database(url: str, revision: str = "head", *, engine: Engine | None = None) -> None:
    """Migrate the database at ``url`` to ``revision`` (default: the newest).

    A given ``engine`` is reused (its connection runs the migration), which matters for
    SQLite in-memory databases and keeps connection settings identical.
    """
    config = alembic_config(url)
    own_engine = engine is None
    engine = engine or create_db_engine(url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        if own_engine:
            engine.dispose()


def prepare_sqlite(
    url: str, data_dir: Path | None, *, engine: Engine | None = None, migrate: bool = True
) -> None:
    """Create ``data_dir`` for an SQLite database and, with ``migrate``, bring it to head.

    The embedded SQLite default needs no separate set-up step, so the server and the
    CLI call this before using the database (``data_dir`` None: the file exists
    already). A server database (PostgreSQL, MariaDB) is left alone: ``crowdsky db
    upgrade`` migrates it.
    """
    if not is_sqlite(url):
        return
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
    if migrate:
        upgrade_database(url, engine=engine)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest revision this version of CrowdSky ships."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


class SchemaNotCurrent(Exception):
    """The database is unreachable or not migrated to this version's schema."""


def verify_schema(engine: Engine) -> None:
    """Fail fast, with what to do, when the database is unreachable or not at head.

    Raises
    ------
    SchemaNotCurrent
    """
    shown = engine.url.render_as_string(hide_password=True)
    try:
        current = current_revision(engine)
    except Exception as exc:  # driver errors differ per backend
        raise SchemaNotCurrent(f"cannot reach the database {shown}: {exc}") from exc
    head = head_revision()
    if current != head:
        raise SchemaNotCurrent(
            f"database {shown} is at schema revision {current or 'none'}, this server needs "
            f"{head}; run `crowdsky db upgrade` with the same CROWDSKY_DATABASE_URL"
        )
