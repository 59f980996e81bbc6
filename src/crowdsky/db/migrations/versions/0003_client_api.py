"""client API: telescopes, job kinds, client-facing stack columns, private stacks

The later original server's clients (``clients.md``) read ``telescope_id``, ``eq_mode``,
``sqm`` and the HEALPix pixel of every stack, and its data API must leave private
stacks out. ``stacking_jobs.kind`` lets a post-processing job (a stack uploaded
ready-made) share the queue with stacking jobs.

Revision ID: 0003_client_api
Revises: 0002
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crowdsky.db.types

revision: str = "0003_client_api"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "telescopes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", crowdsky.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_telescopes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telescopes")),
        sa.UniqueConstraint("user_id", "name", name=op.f("uq_telescopes_user_id_name")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stacks_private", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("stacking_jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), server_default="stack", nullable=False)
        )
    with op.batch_alter_table("stacked_frames", schema=None) as batch_op:
        batch_op.add_column(sa.Column("telescope_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("eq_mode", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("sqm", crowdsky.db.types.DOUBLE, nullable=True))
        batch_op.add_column(sa.Column("healpix", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("is_private", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("location_scrubbed", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_stacked_frames_telescope_id_telescopes"),
            "telescopes",
            ["telescope_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index(
            batch_op.f("ix_stacked_frames_healpix_date_obs_start"),
            ["healpix", "date_obs_start"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_stacked_frames_user_id_created_at"),
            ["user_id", "created_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("stacked_frames", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stacked_frames_user_id_created_at"))
        batch_op.drop_index(batch_op.f("ix_stacked_frames_healpix_date_obs_start"))
        batch_op.drop_constraint(
            batch_op.f("fk_stacked_frames_telescope_id_telescopes"), type_="foreignkey"
        )
        for column in ("location_scrubbed", "is_private", "healpix", "sqm", "eq_mode"):
            batch_op.drop_column(column)
        batch_op.drop_column("telescope_id")
    with op.batch_alter_table("stacking_jobs", schema=None) as batch_op:
        batch_op.drop_column("kind")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("stacks_private")
    op.drop_table("telescopes")
