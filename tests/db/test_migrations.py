"""The Alembic migrations produce exactly the schema of db/models.py, on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from crowdsky.db.migrate import current_revision, head_revision
from crowdsky.db.models import Base
from tests.db_backends import TestDatabase


def test_upgrade_head_matches_the_models(test_db: TestDatabase) -> None:
    with test_db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
    assert current_revision(test_db.engine) == head_revision()


def test_every_table_exists(test_db: TestDatabase) -> None:
    names = set(inspect(test_db.engine).get_table_names())
    assert set(Base.metadata.tables) <= names
    for original in ("users", "upload_sessions", "raw_files", "stacking_jobs", "stacked_frames"):
        assert original in names
