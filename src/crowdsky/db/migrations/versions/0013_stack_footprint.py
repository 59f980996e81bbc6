"""stacked_frames.wcs_corners, wcs_healpix_pixels: where a solved stack lies on the sky

The plate solution's centre and its one HEALPix pixel were recorded; a stack covers
about 43′ × 76′, several NSIDE 128 pixels. Its four corners and every pixel it
touches are now kept too (JSON text), as the worker reports them.

Revision ID: 0013_stack_footprint
Revises: 0012_signing_keys
Create Date: 2026-12-07 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_stack_footprint"
down_revision: str | None = "0012_signing_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stacked_frames") as batch:
        batch.add_column(sa.Column("wcs_corners", sa.Text(), nullable=True))
        batch.add_column(sa.Column("wcs_healpix_pixels", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stacked_frames") as batch:
        batch.drop_column("wcs_healpix_pixels")
        batch.drop_column("wcs_corners")
