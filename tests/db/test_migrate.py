"""``db/migrate.py``'s one set-up block for the embedded SQLite database."""

from __future__ import annotations

from pathlib import Path

from crowdsky.db import create_db_engine, prepare_sqlite
from crowdsky.db.migrate import current_revision, head_revision


def test_prepare_sqlite_creates_the_folder_and_migrates(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "data"
    url = f"sqlite:///{data_dir / 'crowdsky.sqlite3'}"
    prepare_sqlite(url, data_dir)
    engine = create_db_engine(url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_prepare_sqlite_without_migrate_only_creates_the_folder(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    prepare_sqlite(f"sqlite:///{data_dir / 'db.sqlite3'}", data_dir, migrate=False)
    assert data_dir.is_dir() and not (data_dir / "db.sqlite3").exists()


def test_a_server_database_is_left_alone(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # no connection is attempted: the URL's server does not exist
    prepare_sqlite("postgresql://nobody@127.0.0.1:1/none", data_dir)
    assert not data_dir.exists()
