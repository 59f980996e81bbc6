"""raw_files.lost_at: when cleanup found a raw file's stored copy missing on disk

A row whose file is gone is reported (logged, and this column set) instead of being
handed to a worker as if it were still stored.

Revision ID: 0003_raw_file_lost_at
Revises: 0002
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crowdsky.db.types

revision: str = "0003_raw_file_lost_at"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("raw_files") as batch:
        batch.add_column(sa.Column("lost_at", crowdsky.db.types.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("raw_files") as batch:
        batch.drop_column("lost_at")
