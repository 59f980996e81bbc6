"""A slot's identity, and finding the job that holds a slot's frames.

A user ends with one stack per slot: one user, telescope, filter and exposure in one
15-minute UTC slot, at one pointing. The chunk key cannot name it (its position is
the mean of the frames uploaded together, so a run uploaded in two parts gets two
keys), so pointings match within ``separation_deg``. :func:`find_slot_head` returns
the slot's latest job, locked; :func:`lock_user` serialises one user's finalizes so
two sessions cannot both queue a job for one slot.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable, func, or_, select
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.elements import ColumnElement

from crowdsky.db.models import RawFile, SlotLock, StackedFrame, StackingJob
from crowdsky.ingest import chunking
from crowdsky.queue.states import ACTIVE_STATUSES, JobStatus

STACK_KIND = "stack"
#: Statuses whose frames count as stacked (or about to be): copies are not stacked again.
HOLDING_STATUSES = (*sorted(str(s) for s in ACTIVE_STATUSES), JobStatus.COMPLETED.value)
#: Hashes per ``IN`` list (bound parameters stay well under every backend's limit).
HASH_BATCH = 500


@dataclass(frozen=True, slots=True)
class SlotHead:
    """The latest job of a slot, read under its row lock."""

    job_id: int
    status: JobStatus
    chunk_key: str
    frame_count: int
    frames_stored: bool
    """Every frame of the job is still in the raw buffer (none deleted or lost)."""
    ra_deg: float | None = None
    dec_deg: float | None = None
    """The slot's recorded pointing (a follow-up keeps it, so the slot cannot drift)."""


def slot_of(chunk: chunking.Chunk) -> str:
    """The ``YYYYMMDD.CC`` UTC slot of a chunk."""
    return chunking.slot_prefix(chunk.slot_start)


def lock_user(session: Session, user_id: int) -> None:
    """Take the user's slot lock for the rest of the transaction (see the module doc).

    The lock is the user's row of ``slot_locks``, not the ``users`` row: a completion
    inserting a stack checks its foreign key to ``users`` under a shared lock, which a
    lock on that row would block while this finalize waits for the completed job's row,
    a deadlock. The row is made with the user (``accounts.create_user``; migration 0014
    for older users). Creating it here under concurrency would deadlock on MariaDB: a
    locking read of a missing row takes a gap lock, which every concurrent finalize
    shares and then each one's insert waits for. A user without the row (made by other
    means) gets it here, which is safe when nothing else of theirs runs at that moment.
    """
    locked = select(SlotLock.user_id).where(SlotLock.user_id == user_id).with_for_update()
    if session.execute(locked).first() is None:
        session.execute(_insert_ignoring_duplicate(session, user_id))
        session.execute(locked).one()


def _insert_ignoring_duplicate(session: Session, user_id: int) -> Executable:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(SlotLock).values(user_id=user_id).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(SlotLock).values(user_id=user_id).on_conflict_do_nothing()
    return mysql.insert(SlotLock).values(user_id=user_id).prefix_with("IGNORE")


def find_slot_head(
    session: Session, user_id: int, chunk: chunking.Chunk, separation_deg: float
) -> SlotHead | None:
    """The slot's latest stacking job (any status), locked; None for a new slot."""
    rows = session.execute(
        select(StackingJob)
        .where(
            StackingJob.user_id == user_id,
            StackingJob.kind == STACK_KIND,
            StackingJob.slot == slot_of(chunk),
            _equal_or_both_null(StackingJob.telescope, chunk.telescope),
            _equal_or_both_null(StackingJob.filter_name, chunk.filter_name),
            _equal_or_both_null(StackingJob.exptime, chunk.exptime_s),
        )
        .order_by(StackingJob.id)
        .with_for_update()
        .execution_options(populate_existing=True)  # the status after the lock
    ).scalars()
    matching = [job for job in rows if _same_pointing(job, chunk, separation_deg)]
    if not matching:
        return None
    head = matching[-1]
    gone = session.execute(
        select(func.count())
        .select_from(RawFile)
        .where(
            RawFile.stacking_job_id == head.id,
            or_(RawFile.is_deleted.is_(True), RawFile.lost_at.is_not(None)),
        )
    ).scalar_one()
    return SlotHead(
        head.id,
        JobStatus(head.status),
        head.chunk_key,
        head.frame_count,
        gone == 0,
        head.ra_deg,
        head.dec_deg,
    )


@dataclass(frozen=True, slots=True)
class CopyHolder:
    """The job (and its stack, once completed) that already holds a file."""

    job_id: int
    status: JobStatus
    stack_id: int | None


def stacked_copies(
    session: Session, user_id: int, session_id: int, hashes: Iterable[str]
) -> dict[str, CopyHolder]:
    """Which of these SHA-256 are files the user has in a stack or a queued job already
    (any key, any session but this one), and where."""
    wanted = sorted(set(hashes))
    found: dict[str, CopyHolder] = {}
    for start in range(0, len(wanted), HASH_BATCH):
        rows = session.execute(
            select(RawFile.sha256, StackingJob.id, StackingJob.status, StackedFrame.id)
            .join(StackingJob, StackingJob.id == RawFile.stacking_job_id)
            .outerjoin(StackedFrame, StackedFrame.stacking_job_id == StackingJob.id)
            .where(
                StackingJob.user_id == user_id,
                StackingJob.kind == STACK_KIND,
                StackingJob.status.in_(HOLDING_STATUSES),
                RawFile.upload_session_id != session_id,
                RawFile.sha256.in_(wanted[start : start + HASH_BATCH]),
            )
            .order_by(StackingJob.id)
        )
        for sha256, job_id, status, stack_id in rows:
            found.setdefault(sha256, CopyHolder(job_id, JobStatus(status), stack_id))
    return found


def _same_pointing(job: StackingJob, chunk: chunking.Chunk, separation_deg: float) -> bool:
    if job.ra_deg is None or job.dec_deg is None:
        return job.chunk_key == chunk.chunk_key  # queued before pointings were recorded
    if chunk.ra_deg is None or chunk.dec_deg is None:
        return False
    return angular_distance_deg(job.ra_deg, job.dec_deg, chunk.ra_deg, chunk.dec_deg) <= (
        separation_deg
    )


def angular_distance_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Great-circle distance between two directions (haversine: exact at small angles)."""
    phi1, phi2 = math.radians(dec1), math.radians(dec2)
    half_dphi = (phi2 - phi1) / 2.0
    half_dlam = math.radians(ra2 - ra1) / 2.0
    h = math.sin(half_dphi) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(half_dlam) ** 2
    return math.degrees(2.0 * math.asin(min(1.0, math.sqrt(h))))


def _equal_or_both_null(column: InstrumentedAttribute[Any], value: object) -> ColumnElement[bool]:
    """``column = value``, or ``column IS NULL`` when the value is missing."""
    if value is None:
        return column.is_(None)
    return column == value
