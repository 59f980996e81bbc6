"""a job remembers which per-worker token claimed it

``stacking_jobs.holder_token`` is the name of the per-worker token that claimed the
job (NULL when the shared ``WORKER_API_KEY`` claimed it, or nobody holds it). Every
job-scoped call made with a per-worker token must come from that token, so one
volunteer's credential cannot list, download, complete, fail, release or renew a job
another volunteer holds.

Revision ID: 0003_worker_job_binding
Revises: 0003_web
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_worker_job_binding"
down_revision: str | None = "0003_web"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stacking_jobs") as batch:
        batch.add_column(sa.Column("holder_token", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stacking_jobs") as batch:
        batch.drop_column("holder_token")
