"""Database backends for tests: SQLite, PostgreSQL and MariaDB, each in its own database.

Every test run creates fresh databases with random names, migrates them with Alembic
(the real schema path) and drops them at the end; each test starts from empty tables.
PostgreSQL and MariaDB are found through ``CROWDSKY_TEST_POSTGRES_URL`` and
``CROWDSKY_TEST_MARIADB_URL`` (defaults: the local trust-auth servers of this
project's machines). Where a server is unreachable the tests skip with a message,
unless ``CROWDSKY_REQUIRE_ALL_BACKENDS=1`` (set by ``.ci/run``), which makes them fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from crowdsky.db import create_db_engine, make_session_factory, upgrade_database
from crowdsky.db.models import Base

BACKENDS = ("sqlite", "postgresql", "mariadb")
SERVER_URLS = {
    "postgresql": os.environ.get(
        "CROWDSKY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    ),
    "mariadb": os.environ.get(
        "CROWDSKY_TEST_MARIADB_URL", "mariadb+pymysql://root@127.0.0.1:3306/test"
    ),
}


def require_all_backends() -> bool:
    """True in CI: an unreachable database server is a failure, not a skip."""
    return os.environ.get("CROWDSKY_REQUIRE_ALL_BACKENDS", "") == "1"


@dataclass
class TestDatabase:
    """A migrated database for one backend."""

    __test__ = False  # not a test class, despite its name

    backend: str
    url: str
    engine: Engine
    session_factory: sessionmaker[Session]

    def reset(self) -> None:
        """Empty every table (children first) so the next test starts clean."""
        with self.engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())


def _unavailable(backend: str, url: str, exc: Exception) -> None:
    shown = make_url(url).render_as_string(hide_password=True)
    message = (
        f"{backend} is not reachable at {shown} ({type(exc).__name__}: {exc}); "
        f"set CROWDSKY_TEST_{'POSTGRES' if backend == 'postgresql' else 'MARIADB'}_URL "
        "to a server where tests may create databases"
    )
    if require_all_backends():
        pytest.fail(message)
    pytest.skip(message)


def create_server_database(backend: str) -> tuple[str, Engine]:
    """Create a uniquely named database on a server backend; returns its URL and admin engine."""
    admin_url = SERVER_URLS[backend]
    name = f"crowdsky_test_{secrets.token_hex(4)}"
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
        with admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}"))
    except Exception as exc:  # driver errors differ per backend
        _unavailable(backend, admin_url, exc)
        raise
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return url, admin


def drop_server_database(url: str, admin: Engine) -> None:
    """Drop a test database created by :func:`create_server_database`."""
    name = make_url(url).database
    with admin.connect() as connection:
        if admin.dialect.name == "postgresql":
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        else:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    admin.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def _migrated_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestDatabase]:
    backend: str = request.param
    admin: Engine | None = None
    if backend == "sqlite":
        path: Path = tmp_path_factory.mktemp("sqlite") / "crowdsky.sqlite3"
        url = f"sqlite:///{path}"
    else:
        url, admin = create_server_database(backend)
    engine = create_db_engine(url)
    try:
        upgrade_database(url, engine=engine)
        yield TestDatabase(backend, url, engine, make_session_factory(engine))
    finally:
        engine.dispose()
        if admin is not None:
            drop_server_database(url, admin)


@pytest.fixture
def test_db(_migrated_database: TestDatabase) -> TestDatabase:
    """A migrated, empty database on each backend in turn (sqlite, postgresql, mariadb)."""
    _migrated_database.reset()
    return _migrated_database


@pytest.fixture
def db_url(test_db: TestDatabase) -> str:
    """URL of an empty migrated database, once per backend."""
    return test_db.url


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[TestDatabase]:
    """A migrated SQLite database only, for tests that need no backend matrix."""
    url = f"sqlite:///{tmp_path / 'crowdsky.sqlite3'}"
    engine = create_db_engine(url)
    upgrade_database(url, engine=engine)
    try:
        yield TestDatabase("sqlite", url, engine, make_session_factory(engine))
    finally:
        engine.dispose()
