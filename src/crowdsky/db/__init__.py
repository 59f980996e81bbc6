"""Database: tables, engines and migrations. Only core packages import from here."""

from __future__ import annotations

from crowdsky.db.engine import (
    DatabaseUnavailable,
    affected_rows,
    create_db_engine,
    is_sqlite,
    make_session_factory,
    normalize_url,
)
from crowdsky.db.migrate import prepare_sqlite, upgrade_database
from crowdsky.db.types import UTCDateTime, utcnow

__all__ = [
    "DatabaseUnavailable",
    "UTCDateTime",
    "affected_rows",
    "create_db_engine",
    "is_sqlite",
    "make_session_factory",
    "normalize_url",
    "prepare_sqlite",
    "upgrade_database",
    "utcnow",
]
