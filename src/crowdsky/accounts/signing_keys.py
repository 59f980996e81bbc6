"""Keys the deployment signs with, kept in the database so every server process shares them.

A key is created once, by the first process that asks for it; a concurrent creator
loses the insert and reads the winner's key, so all processes on one database sign
alike, on any host. Rows hold the key itself: the database is already trusted with
everything a key protects.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crowdsky.db.models import SigningKey

__all__ = ["MIN_KEY_CHARS", "shared_signing_key"]

#: A stored or adopted key shorter than this is not used (hex of 128 random bits).
MIN_KEY_CHARS = 32
NEW_KEY_BYTES = 32


def shared_signing_key(
    session: Session,
    now: datetime,
    name: str,
    *,
    adopt: Callable[[], str | None] = lambda: None,
) -> str:
    """The key called ``name``, created now if the database has none.

    Parameters
    ----------
    session
        A session outside any transaction; the key is committed before it is returned.
    now
        Creation time recorded with a new key.
    name
        What the key signs (``"web-cookies"``).
    adopt
        Called only when the key is missing: a key to store instead of a new random
        one (a value kept elsewhere before, so that what it signed stays valid), or None.

    Returns
    -------
    str
        The key every process of the deployment uses.
    """
    stored = session.scalar(select(SigningKey.value).where(SigningKey.name == name))
    if stored is not None:
        return stored
    candidate = adopt()
    if candidate is None or len(candidate) < MIN_KEY_CHARS:
        candidate = secrets.token_hex(NEW_KEY_BYTES)
    session.add(SigningKey(name=name, value=candidate, created_at=now))
    try:
        session.commit()
    except IntegrityError:  # another process created it first: use theirs
        session.rollback()
        winner = session.scalar(select(SigningKey.value).where(SigningKey.name == name))
        if winner is None:
            raise
        return winner
    return candidate
