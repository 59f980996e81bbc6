"""slot_locks: a row for every user, made with the account

A finalize locks its user's ``slot_locks`` row. The row used to be created by the
first finalize that needed it; on MariaDB concurrent first finalizes of one user
deadlocked there (each took a gap lock on the missing row, then each one's insert
waited for the others'). Accounts now get the row when they are created; this
revision adds it for the users that have none.

Revision ID: 0014_slot_lock_rows
Revises: 0013_stack_footprint
Create Date: 2026-12-07 19:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0014_slot_lock_rows"
down_revision: str | None = "0013_stack_footprint"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "INSERT INTO slot_locks (user_id) SELECT id FROM users "
        "WHERE id NOT IN (SELECT user_id FROM slot_locks)"
    )


def downgrade() -> None:
    """Nothing to undo: the rows are what the previous revision would create on use."""
