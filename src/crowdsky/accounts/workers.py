"""Per-worker API tokens: named, shown once, stored hashed, revocable.

The shared ``WORKER_API_KEY`` of the original keeps working; per-worker tokens let an
operator give each volunteer their own credential and revoke it alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crowdsky.accounts import tokens
from crowdsky.db.engine import affected_rows
from crowdsky.db.models import WorkerToken

WORKER_TOKEN_PREFIX = "csw_"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class WorkerTokenError(Exception):
    """A worker-token operation was refused."""


@dataclass(frozen=True, slots=True)
class IssuedWorkerToken:
    """A freshly created token: the only time its secret is visible."""

    name: str
    token: str


@dataclass(frozen=True, slots=True)
class WorkerTokenInfo:
    """A stored token without its secret."""

    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


def create_worker_token(session: Session, now: datetime, name: str) -> IssuedWorkerToken:
    """Create a token for worker ``name`` (letters, digits, ``._@-``; at most 64 chars)."""
    if not NAME_PATTERN.match(name):
        raise WorkerTokenError(
            f"invalid worker name {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-'"
        )
    secret = tokens.generate_token(WORKER_TOKEN_PREFIX)
    try:
        with session.begin():
            existing = session.execute(
                select(WorkerToken).where(WorkerToken.name == name)
            ).scalar_one_or_none()
            if existing is not None and existing.revoked_at is None:
                raise WorkerTokenError(
                    f"worker {name!r} already has a token; revoke it first to issue a new one"
                )
            if existing is not None:
                session.delete(existing)
                session.flush()
            session.add(
                WorkerToken(
                    name=name,
                    token_hash=tokens.hash_token(secret),
                    token_prefix=tokens.display_prefix(secret),
                    created_at=now,
                )
            )
    except IntegrityError as exc:
        raise WorkerTokenError(f"worker {name!r} was created concurrently; try again") from exc
    return IssuedWorkerToken(name=name, token=secret)


def revoke_worker_token(session: Session, now: datetime, name: str) -> None:
    """Revoke the token of worker ``name``; it stops working at once."""
    with session.begin():
        changed = affected_rows(
            session.execute(
                update(WorkerToken)
                .where(WorkerToken.name == name, WorkerToken.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        )
    if changed != 1:
        raise WorkerTokenError(f"no active token for worker {name!r}")


def list_worker_tokens(session: Session) -> list[WorkerTokenInfo]:
    """All tokens, active and revoked, by name."""
    with session.begin():
        rows = session.execute(select(WorkerToken).order_by(WorkerToken.name)).scalars()
        return [
            WorkerTokenInfo(r.name, r.token_prefix, r.created_at, r.revoked_at, r.last_used_at)
            for r in rows
        ]


def authenticate_worker_token(session: Session, token: str) -> str | None:
    """The worker name of an active token, or None. Lookup is by hash (no timing leak)."""
    if not token.startswith(WORKER_TOKEN_PREFIX):
        return None
    with session.begin():
        return session.execute(
            select(WorkerToken.name).where(
                WorkerToken.token_hash == tokens.hash_token(token),
                WorkerToken.revoked_at.is_(None),
            )
        ).scalar_one_or_none()
