"""signing_keys: keys the deployment signs with, shared by every server process

The web session cookies were signed with a key created in each server's data dir
(``web-secret.key``) unless ``CROWDSKY_WEB_SECRET`` was set: two servers on two hosts
then refused each other's cookies. The key now lives in the database, created once by
the first server that needs it (a data dir's existing key is adopted, so no one is
logged out by the upgrade).

Revision ID: 0012_signing_keys
Revises: 0011_sky_coverage
Create Date: 2026-12-07 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import crowdsky.db.types

revision: str = "0012_signing_keys"
down_revision: str | None = "0011_sky_coverage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("created_at", crowdsky.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_signing_keys")),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
