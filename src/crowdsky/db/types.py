"""Column types that behave the same on every backend.

``UTCDateTime`` stores naive UTC (SQLite and MariaDB have no timezone-aware type)
and hands out aware UTC datetimes; it refuses naive values, so a local time can
never be stored as if it were UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Double, Float
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

# Floating-point columns: 8-byte on every backend. ``Float`` alone is a 4-byte FLOAT on
# MariaDB (6 significant digits back), which broke idempotent completion; ``Double`` is
# DOUBLE / DOUBLE PRECISION there and on PostgreSQL. SQLite keeps the declared ``FLOAT``
# of its existing tables: it stores every REAL in 8 bytes whatever the declared type,
# and rewriting its tables (with foreign keys on) is not worth it (migration 0002).
DOUBLE: TypeEngine[float] = Double().with_variant(Float(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetime stored as naive UTC with microseconds."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import DATETIME

            return dialect.type_descriptor(DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=False))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given; CrowdSky stores only aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
