"""stacking jobs know their slot: one stack per slot, re-stacked as frames arrive

A job records the identity of its slot (the ``YYYYMMDD.CC`` UTC slot and the
chunk's mean pointing), the job whose stack it replaces when it completes, and the
job it waits for (a follow-up queued while that job was being processed is not
claimable until it is done). ``slot_locks`` holds one row per user, locked while a
finalize places that user's frames. Jobs already queued get their slot from the key's
prefix; their pointing stays unknown, so they match a later upload by exact key.

Revision ID: 0010_slot_restack
Revises: 0009_login_throttle
Create Date: 2026-12-04 03:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crowdsky.db.types

revision: str = "0010_slot_restack"
down_revision: str | None = "0009_login_throttle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "slot_locks",
        sa.Column("user_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_slot_locks_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_slot_locks")),
    )
    with op.batch_alter_table("stacking_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("slot", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("ra_deg", crowdsky.db.types.DOUBLE, nullable=True))
        batch_op.add_column(sa.Column("dec_deg", crowdsky.db.types.DOUBLE, nullable=True))
        batch_op.add_column(sa.Column("replaces_job_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("waits_for_job_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_stacking_jobs_replaces_job_id_stacking_jobs"),
            "stacking_jobs",
            ["replaces_job_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_stacking_jobs_waits_for_job_id_stacking_jobs"),
            "stacking_jobs",
            ["waits_for_job_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index(
            batch_op.f("ix_stacking_jobs_user_id_slot"), ["user_id", "slot"], unique=False
        )
    jobs = sa.table("stacking_jobs", sa.column("slot"), sa.column("chunk_key"), sa.column("kind"))
    op.execute(
        jobs.update()
        .where(jobs.c.kind == "stack", jobs.c.chunk_key.like("________.__%"))
        .values(slot=sa.func.substr(jobs.c.chunk_key, 1, 11))
    )


def downgrade() -> None:
    with op.batch_alter_table("stacking_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stacking_jobs_user_id_slot"))
        batch_op.drop_constraint(
            batch_op.f("fk_stacking_jobs_waits_for_job_id_stacking_jobs"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_stacking_jobs_replaces_job_id_stacking_jobs"), type_="foreignkey"
        )
        for column in ("waits_for_job_id", "replaces_job_id", "dec_deg", "ra_deg", "slot"):
            batch_op.drop_column(column)
    op.drop_table("slot_locks")
