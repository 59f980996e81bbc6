"""sky_coverage_cells: the sky coverage kept per (tile, filter) as stacks change

``sky_coverage`` aggregated every published stack on each call (8.77 s over 1,000,000
stacks). The cells are now kept up to date in the transaction that records, replaces,
publishes, hides or deletes a stack (``crowdsky.stacks.coverage``); this revision
creates the table and fills it from the stacks already there (their ECSV lines are
rendered when read until a change rewrites them).

Revision ID: 0011_sky_coverage
Revises: 0010_slot_restack
Create Date: 2026-12-04 03:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crowdsky.db.types

revision: str = "0011_sky_coverage"
down_revision: str | None = "0010_slot_restack"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    cells = op.create_table(
        "sky_coverage_cells",
        sa.Column("healpix", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("filter_name", sa.String(length=32), nullable=False),
        sa.Column("n_stacks", sa.Integer(), nullable=False),
        sa.Column("total_exptime_s", crowdsky.db.types.DOUBLE, nullable=False),
        sa.Column("n_observers", sa.Integer(), nullable=False),
        sa.Column("first_obs", crowdsky.db.types.UTCDateTime(), nullable=True),
        sa.Column("last_obs", crowdsky.db.types.UTCDateTime(), nullable=True),
        sa.Column("ecsv_row", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("healpix", "filter_name", name=op.f("pk_sky_coverage_cells")),
    )
    stacks = sa.table(
        "stacked_frames",
        sa.column("healpix", sa.Integer()),
        sa.column("filter_name", sa.String()),
        sa.column("total_exptime", sa.Float()),
        sa.column("user_id", sa.Integer()),
        sa.column("date_obs_start", sa.DateTime()),
        sa.column("is_private", sa.Boolean()),
    )
    name = sa.func.coalesce(stacks.c.filter_name, "")
    aggregate = (
        sa.select(
            stacks.c.healpix,
            name,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(stacks.c.total_exptime), 0.0),
            sa.func.count(sa.distinct(stacks.c.user_id)),
            sa.func.min(stacks.c.date_obs_start),
            sa.func.max(stacks.c.date_obs_start),
        )
        .where(stacks.c.is_private.is_(sa.false()), stacks.c.healpix.is_not(None))
        .group_by(stacks.c.healpix, name)
    )
    op.execute(
        cells.insert().from_select(
            [
                "healpix",
                "filter_name",
                "n_stacks",
                "total_exptime_s",
                "n_observers",
                "first_obs",
                "last_obs",
            ],
            aggregate,
        )
    )


def downgrade() -> None:
    op.drop_table("sky_coverage_cells")
