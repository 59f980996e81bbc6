"""stacks record which frames were left out, and why

``stacked_frames.rejected_frames`` holds the worker's list of frames the stack did not
use, as JSON ``[[filename, reason], ...]`` (NULL when every frame was used or the
worker did not say), so the owner's job listing shows the reasons without opening
the FITS file's FRAMES table.

Revision ID: 0003_frame_rejections
Revises: 0003_client_api
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_frame_rejections"
down_revision: str | None = "0003_client_api"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stacked_frames") as batch:
        batch.add_column(sa.Column("rejected_frames", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stacked_frames") as batch:
        batch.drop_column("rejected_frames")
