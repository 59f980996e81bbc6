"""Engines and sessions per database URL, with each backend's concurrency settings.

SQLite (the embedded default) has no row locks: correctness of job claims comes from
taking the write lock at the start of every transaction (``BEGIN IMMEDIATE``), with
WAL so that readers are not blocked and a busy timeout so that writers queue instead
of failing. PostgreSQL and MariaDB use ``FOR UPDATE SKIP LOCKED`` in the claim and a
normal connection pool.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Engine, Result, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_S = 30.0
SERVER_POOL_SIZE = 16
SERVER_POOL_OVERFLOW = 48


class DatabaseUnavailable(Exception):
    """The database could not be reached or opened."""


def normalize_url(url: str) -> str:
    """Pick our drivers for bare URLs: psycopg 3 for PostgreSQL, PyMySQL for MariaDB/MySQL."""
    parsed = make_url(url)
    driver = parsed.drivername
    if driver in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif driver in ("mysql", "mariadb"):
        parsed = parsed.set(drivername=f"{driver}+pymysql")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(engine_or_url: Engine | str) -> bool:
    """Whether the engine (or URL) is SQLite."""
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine configured for CrowdSky's transaction patterns.

    Parameters
    ----------
    url
        SQLAlchemy URL; bare ``postgresql://`` and ``mysql://``/``mariadb://`` get our drivers.
    **kwargs
        Passed to :func:`sqlalchemy.create_engine` (e.g. ``pool_size``).
    """
    url = normalize_url(url)
    if is_sqlite(url):
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
            **kwargs,
        )
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_size", SERVER_POOL_SIZE)
    kwargs.setdefault("max_overflow", SERVER_POOL_OVERFLOW)
    # No pre-ping: it costs a round trip per request. A connection broken by a database
    # restart fails one request and SQLAlchemy then discards the whole stale pool.
    kwargs.setdefault("pool_recycle", 3600)
    if make_url(url).get_backend_name() in ("mysql", "mariadb"):
        # MariaDB's default REPEATABLE READ makes a SKIP LOCKED claim see a stale snapshot
        # of rows that other transactions changed; READ COMMITTED is what a queue needs.
        kwargs.setdefault("isolation_level", "READ COMMITTED")
    return create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    """WAL, busy timeout, foreign keys, and BEGIN IMMEDIATE for every transaction."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Stop the driver's own implicit BEGIN so that ours below is the only one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that do not expire objects on commit (records are copied out anyway)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def affected_rows(result: Result[Any]) -> int:
    """Rows changed by an UPDATE or DELETE (the compare-and-set checks read this)."""
    return cast(CursorResult[Any], result).rowcount
