"""login_failures: the login throttle's counters, shared by every server process

One row per throttled key (SHA-256 of an account name or a client address) with the
start of its counting window (epoch seconds) and the attempts counted in it. Several
server processes on one database then share one limit, instead of each granting its
own (which multiplied an attacker's guesses by the number of servers).

Revision ID: 0009_login_throttle
Revises: 0003_plate_solve
Create Date: 2026-12-04 03:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_login_throttle"
down_revision: str | None = "0003_plate_solve"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# DOUBLE on PostgreSQL and MariaDB; SQLite declares FLOAT like its other columns (0002)
_DOUBLE = sa.Double().with_variant(sa.Float(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("window_start", _DOUBLE, nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_login_failures"),
    )
    op.create_index("ix_login_failures_window_start", "login_failures", ["window_start"])


def downgrade() -> None:
    op.drop_index("ix_login_failures_window_start", table_name="login_failures")
    op.drop_table("login_failures")
