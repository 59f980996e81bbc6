"""stacked_frames records the plate solution and the photometric calibration

The worker plate-solves every stack and reports, beside the spec's fields, whether it
solved (and why not), the solved centre, its HEALPix pixel (NSIDE 128, RING), pixel
scale, rotation, astrometric residual and matched stars, and the calibration: zero
points, their scatter and star count, limiting magnitude and measured sky brightness.
Every column is nullable: stacks completed before, or by a worker without a solver,
have none.

Revision ID: 0003_plate_solve
Revises: 0003_frame_rejections
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_plate_solve"
down_revision: str | None = "0003_frame_rejections"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# DOUBLE on PostgreSQL and MariaDB; SQLite declares FLOAT like its other columns (0002)
_DOUBLE = sa.Double().with_variant(sa.Float(), "sqlite")

COLUMNS: tuple[tuple[str, sa.types.TypeEngine[object]], ...] = (
    ("plate_solved", sa.Boolean()),
    ("solve_message", sa.String(255)),
    ("wcs_ra_deg", _DOUBLE),
    ("wcs_dec_deg", _DOUBLE),
    ("wcs_healpix", sa.Integer()),
    ("wcs_scale_arcsec", _DOUBLE),
    ("wcs_rotation_deg", _DOUBLE),
    ("wcs_rms_arcsec", _DOUBLE),
    ("wcs_n_matched", sa.Integer()),
    ("phot_zp_r", _DOUBLE),
    ("phot_zp_g", _DOUBLE),
    ("phot_zp_b", _DOUBLE),
    ("phot_zp_scatter", _DOUBLE),
    ("phot_n_stars", sa.Integer()),
    ("phot_limit_mag", _DOUBLE),
    ("phot_sqm", _DOUBLE),
)


def upgrade() -> None:
    with op.batch_alter_table("stacked_frames") as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stacked_frames") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
