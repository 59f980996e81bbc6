"""floating-point columns are double precision on every backend

``sa.Float()`` is 8 bytes on PostgreSQL (``FLOAT`` means ``float8`` there) and SQLite
(``REAL``), but a 4-byte single-precision ``FLOAT`` on MariaDB/MySQL, which stores
coordinates to about 7 significant digits and hands them back with 6 (RA 192.7213458
comes back as 192.721). Every floating-point column becomes ``DOUBLE``.

SQLite stores every REAL in 8 bytes whatever the declared type, so its tables are left
alone (a batch ALTER would rewrite each table for nothing). Values already stored in a
MariaDB ``FLOAT`` keep the precision they were stored with.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FLOAT_COLUMNS: dict[str, tuple[str, ...]] = {
    "upload_sessions": ("ra_deg", "dec_deg"),
    "raw_files": (
        "fits_exptime",
        "fits_ra",
        "fits_dec",
        "fits_gain",
        "fits_ccd_temp",
        "fits_sitelat",
        "fits_sitelong",
    ),
    "stacking_jobs": ("exptime", "progress"),
    "stacked_frames": ("total_exptime", "ra_deg", "dec_deg"),
}


def _change(old: sa.types.TypeEngine[float], new: sa.types.TypeEngine[float]) -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, columns in FLOAT_COLUMNS.items():
        for column in columns:
            op.alter_column(table, column, existing_type=old, type_=new, existing_nullable=True)


def upgrade() -> None:
    _change(sa.Float(), sa.Double())


def downgrade() -> None:
    _change(sa.Double(), sa.Float())
