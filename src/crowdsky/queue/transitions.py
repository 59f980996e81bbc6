"""The job state machine: every change of a job's status happens here, one function each.

Each transition takes a session and an explicit ``now``, runs exactly one transaction and
returns a frozen record. Every write is compare-and-set (``WHERE id = :id AND status =
:expected`` with a row-count check), so a late or repeated call changes nothing and
says why. Claims lock their candidate with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL and
MariaDB; on SQLite the engine starts every transaction with ``BEGIN IMMEDIATE``, which
serializes claims. No ``UPDATE ... RETURNING`` (MariaDB lacks it).

Every status change is checked against :data:`crowdsky.queue.states.ALLOWED_MOVES`;
a move outside it raises :class:`crowdsky.queue.errors.IllegalMove`.

The queue deletes no files and imports no storage code: ``complete_job`` releases a
job's raw files through :mod:`crowdsky.retention` in its transaction and reports them,
and the caller deletes them once that transaction has committed.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Connection, Table, and_, bindparam, or_, select, text, update
from sqlalchemy.orm import Session

from crowdsky import retention
from crowdsky.db.engine import affected_rows
from crowdsky.db.models import JobAttempt, RawFile, StackedFrame, StackingJob, UploadSession
from crowdsky.queue import errors, slot_chain
from crowdsky.queue.records import (
    ClaimedJob,
    Completion,
    CompletionOutcome,
    FailureOutcome,
    HeldJob,
    JobFileEntry,
    JobFiles,
    LeaseRenewal,
    NewJob,
    ProgressReport,
    RawFileLocation,
    ReleaseOutcome,
    WorkerCaller,
)
from crowdsky.queue.states import (
    ALLOWED_MOVES,
    MAX_ERROR_MESSAGE_CHARS,
    AttemptOutcome,
    JobStatus,
    retry_delay_seconds,
    status_after_failure,
)
from crowdsky.stacks import catalog

CLAIM_RACE_RETRIES = 5
_STACK_KIND = "stack"
DEFAULT_ERROR_MESSAGE = "Unknown error"
LEASE_EXPIRED_MESSAGE = "lease expired: worker {worker} stopped sending heartbeats"


def enqueue_jobs(session: Session, now: datetime, jobs: Sequence[NewJob]) -> list[int]:
    """Create ``pending`` jobs and attach their raw files; returns the new job ids in order.

    Raises
    ------
    ValueError
        When a job has no raw files (a job that cannot find its files must never exist).
    """
    with session.begin():
        return add_jobs(session, now, jobs)


def add_jobs(session: Session, now: datetime, jobs: Sequence[NewJob]) -> list[int]:
    """:func:`enqueue_jobs` inside the caller's transaction (finalize: jobs and the
    session's ``complete`` status commit together, or neither does).

    Raises
    ------
    ValueError
        As :func:`enqueue_jobs`; the caller's transaction must then roll back.
    """
    job_ids: list[int] = []
    for new in jobs:
        if not new.raw_file_ids:
            raise ValueError(f"job for chunk {new.chunk_key!r} has no raw files")
        job = StackingJob(
            user_id=new.user_id,
            upload_session_id=new.upload_session_id,
            chunk_key=new.chunk_key,
            object_name=new.object_name,
            telescope=new.telescope,
            filter_name=new.filter_name,
            exptime=new.exptime,
            kind=new.kind,
            slot=new.slot,
            ra_deg=new.ra_deg,
            dec_deg=new.dec_deg,
            replaces_job_id=new.replaces_job_id,
            waits_for_job_id=new.waits_for_job_id,
            frame_count=len(new.raw_file_ids),
            status=JobStatus.PENDING,
            created_at=now,
        )
        session.add(job)
        session.flush()
        attached = affected_rows(
            session.execute(
                update(RawFile)
                .where(
                    RawFile.id.in_(new.raw_file_ids),
                    RawFile.is_deleted.is_(False),
                    RawFile.stacking_job_id.is_(None),
                )
                .values(stacking_job_id=job.id)
            )
        )
        if attached != len(new.raw_file_ids):
            raise ValueError(
                f"chunk {new.chunk_key!r}: {len(new.raw_file_ids) - attached} raw files "
                "are missing, deleted or already in a job"
            )
        job_ids.append(job.id)
    return job_ids


def claim_next_job(
    session: Session,
    now: datetime,
    *,
    worker_id: str,
    lease_seconds: int,
    holder_token: str | None = None,
) -> ClaimedJob | None:
    """Claim the oldest ``pending`` job, else the oldest ``retry`` job that is due.

    Returns None when nothing is claimable. The claim carries a lease that expires after
    ``lease_seconds`` unless the worker renews it (:func:`extend_lease`).
    ``holder_token`` names the per-worker token that claims (None: the shared key);
    job-scoped calls with a :class:`WorkerCaller` must then come from the same one.

    This is the hottest path of the server, so it runs prebuilt Core statements on the
    session's connection: the ORM's unit of work has nothing to add here.
    """
    for _ in range(CLAIM_RACE_RETRIES):
        with session.begin():
            connection = session.connection()
            _relax_commit_durability(connection)
            candidate = connection.execute(_PENDING_CANDIDATE).one_or_none()
            if candidate is None:
                candidate = connection.execute(_RETRY_CANDIDATE, {"b_now": now}).one_or_none()
            if candidate is None:
                return None
            _require_move(candidate.id, JobStatus(candidate.status), JobStatus.PROCESSING)
            token = secrets.token_hex(16)
            expires = now + timedelta(seconds=lease_seconds)
            claimed = affected_rows(
                connection.execute(
                    _CLAIM_UPDATE,
                    {
                        "b_id": candidate.id,
                        "b_expected": candidate.status,
                        "b_worker": worker_id,
                        "b_holder": holder_token,
                        "b_token": token,
                        "b_expires": expires,
                        "b_now": now,
                    },
                )
            )
            if claimed != 1:
                continue  # another claimer won a race the lock did not prevent; pick again
        return ClaimedJob(
            job_id=candidate.id,
            user_id=candidate.user_id,
            upload_session_id=candidate.upload_session_id,
            chunk_key=candidate.chunk_key,
            object_name=candidate.object_name,
            frame_count=candidate.frame_count,
            session_path=candidate.session_path,
            worker_id=worker_id,
            lease_token=token,
            lease_expires_at=expires,
            lease_seconds=lease_seconds,
            attempt=candidate.attempts + 1,
            kind=candidate.kind,
        )
    return None


_jobs = cast(Table, StackingJob.__table__)
_sessions = cast(Table, UploadSession.__table__)
_CLAIM_COLUMNS = (
    _jobs.c.id,
    _jobs.c.status,
    _jobs.c.user_id,
    _jobs.c.upload_session_id,
    _jobs.c.chunk_key,
    _jobs.c.object_name,
    _jobs.c.frame_count,
    _jobs.c.attempts,
    _jobs.c.kind,
    # a scalar subquery, not a join: FOR UPDATE must lock only the job row, or claimers
    # of jobs from the same upload session would skip each other's candidates
    select(_sessions.c.storage_path)
    .where(_sessions.c.id == _jobs.c.upload_session_id)
    .scalar_subquery()
    .label("session_path"),
)
_PENDING_CANDIDATE = (
    select(*_CLAIM_COLUMNS)
    # a follow-up of a slot waits until the slot's running job is done (ingest.slots)
    .where(_jobs.c.status == JobStatus.PENDING.value, _jobs.c.waits_for_job_id.is_(None))
    .order_by(_jobs.c.created_at, _jobs.c.id)
    .limit(1)
    .with_for_update(skip_locked=True)
)
_RETRY_CANDIDATE = (
    select(*_CLAIM_COLUMNS)
    .where(
        _jobs.c.status == JobStatus.RETRY.value,
        _jobs.c.waits_for_job_id.is_(None),
        or_(_jobs.c.not_before.is_(None), _jobs.c.not_before <= bindparam("b_now")),
    )
    .order_by(_jobs.c.created_at, _jobs.c.id)
    .limit(1)
    .with_for_update(skip_locked=True)
)
_CLAIM_UPDATE = (
    update(_jobs)
    .where(_jobs.c.id == bindparam("b_id"), _jobs.c.status == bindparam("b_expected"))
    .values(
        status=JobStatus.PROCESSING.value,
        worker_id=bindparam("b_worker"),
        holder_token=bindparam("b_holder"),
        lease_token=bindparam("b_token"),
        lease_expires_at=bindparam("b_expires"),
        started_at=bindparam("b_now"),
        heartbeat_at=bindparam("b_now"),
        attempts=_jobs.c.attempts + 1,
        progress=None,
        progress_message=None,
    )
)


def _relax_commit_durability(connection: Connection) -> None:
    """Let PostgreSQL acknowledge this commit before its WAL reaches the disk.

    Only for claims and heartbeats: if the database crashed in the fraction of a second
    before the flush, the claim is forgotten and the job is handed out again (wasted
    work, never a wrong result: the first worker's lease token no longer matches).
    Completions and failures stay fully durable.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(_ASYNC_COMMIT)


_ASYNC_COMMIT = text("SET LOCAL synchronous_commit TO OFF")


def extend_lease(
    session: Session,
    now: datetime,
    *,
    job_id: int,
    lease_seconds: int,
    worker_id: str | None = None,
    lease_token: str | None = None,
    caller: WorkerCaller | None = None,
    progress: ProgressReport | None = None,
) -> LeaseRenewal:
    """Renew the lease of a job the caller holds (a heartbeat), recording its progress.

    Raises
    ------
    JobNotFound, WrongState, HeldByOtherWorker
        The caller must stop working on the job for the latter two.
    """
    with session.begin():
        _relax_commit_durability(session.connection())
        job = _load_job_for_update(session, job_id)
        _require_holder(job, worker_id, lease_token, caller)
        expires = now + timedelta(seconds=lease_seconds)
        values: dict[str, object] = {"lease_expires_at": expires, "heartbeat_at": now}
        if progress is not None and progress.fraction is not None:
            values["progress"] = min(max(float(progress.fraction), 0.0), 1.0)
        if progress is not None and progress.message is not None:
            values["progress_message"] = progress.message[:255]
        _guarded_update(session, job, JobStatus.PROCESSING, values)
    return LeaseRenewal(job_id=job_id, lease_expires_at=expires)


def list_job_files(
    session: Session,
    *,
    job_id: int,
    worker_id: str | None = None,
    lease_token: str | None = None,
    caller: WorkerCaller | None = None,
) -> JobFiles:
    """The raw files of a job being processed, in DATE-OBS order.

    Only a job in ``processing`` lists its inputs; when the caller names itself
    (``worker_id`` or ``lease_token``) it must be the holder.
    """
    with session.begin():
        job = session.get(StackingJob, job_id)
        if job is None:
            raise errors.JobNotFound(f"job {job_id} does not exist")
        _require_holder(job, worker_id, lease_token, caller)
        rows = session.execute(
            select(RawFile)
            .where(
                RawFile.stacking_job_id == job_id,
                RawFile.is_deleted.is_(False),
                RawFile.lost_at.is_(None),  # reported by cleanup, never silently stacked
            )
            .order_by(RawFile.fits_date_obs, RawFile.id)
        ).scalars()
        files = tuple(
            JobFileEntry(
                id=raw.id,
                filename=raw.filename,
                storage_path=raw.storage_path,
                file_size_bytes=raw.file_size_bytes,
                date_obs=raw.fits_date_obs,
                exptime=raw.fits_exptime,
                ra_deg=raw.fits_ra,
                dec_deg=raw.fits_dec,
            )
            for raw in rows
        )
        return JobFiles(job_id=job_id, chunk_key=job.chunk_key, files=files)


def held_job(
    session: Session,
    *,
    job_id: int,
    worker_id: str | None = None,
    lease_token: str | None = None,
    caller: WorkerCaller | None = None,
) -> HeldJob:
    """A job in ``processing`` checked against its holder (as :func:`list_job_files`),
    with what names its results: the owner, the object and the chunk key."""
    with session.begin():
        job = session.get(StackingJob, job_id)
        if job is None:
            raise errors.JobNotFound(f"job {job_id} does not exist")
        _require_holder(job, worker_id, lease_token, caller)
        return HeldJob(job.id, job.user_id, job.object_name, job.chunk_key)


def locate_raw_file(
    session: Session, *, file_id: int, caller: WorkerCaller | None = None
) -> RawFileLocation:
    """A raw file a worker may download: not deleted, its job processing, held by ``caller``.

    A caller that does not hold the file's job is told the file does not exist, so
    credentials cannot be used to probe which raw files are in flight.
    """
    with session.begin():
        row = session.execute(
            select(RawFile, StackingJob.status, StackingJob.holder_token)
            .join(StackingJob, StackingJob.id == RawFile.stacking_job_id)
            .where(RawFile.id == file_id)
        ).one_or_none()
        if row is None or row[0].is_deleted:
            raise errors.RawFileNotFound(f"raw file {file_id} does not exist or was deleted")
        raw, status, holder = row
        if caller is not None and caller.token_name != holder:
            raise errors.RawFileNotFound(f"raw file {file_id} does not exist or was deleted")
        if status != JobStatus.PROCESSING:
            raise errors.WrongState(
                f"raw file {file_id} belongs to job {raw.stacking_job_id}, which is {status}, "
                "not processing; claim the job first"
            )
        return RawFileLocation(
            id=raw.id,
            filename=raw.filename,
            storage_path=raw.storage_path,
            file_size_bytes=raw.file_size_bytes,
        )


def complete_job(
    session: Session,
    now: datetime,
    completion: Completion,
    *,
    worker_id: str | None = None,
    lease_token: str | None = None,
    caller: WorkerCaller | None = None,
    restack_window_hours: float = 0.0,
) -> CompletionOutcome:
    """Record a finished stack, mark the job ``completed`` and release its raw files.

    The ``stacked_frames`` row, the removal of the rows of the slot's earlier stacks
    it replaces (:func:`crowdsky.queue.slot_chain.remove_replaced_stacks`), the status
    change and the release of the job's raw files
    (:func:`crowdsky.retention.release_job_files`: handed to a follow-up job of the
    slot, kept for ``restack_window_hours``, or freed) commit together, so a user's
    stack list never shows two stacks of one slot, nor none. The outcome lists the
    freed files in ``freed`` and the replaced stacks' result files in
    ``replaced_results``; the caller deletes them after this returns
    (:func:`crowdsky.retention.delete_freed`). An identical repeat (a retry after a
    lost response) is answered with ``repeated=True`` and changes nothing.

    Raises
    ------
    JobNotFound, WrongState, HeldByOtherWorker, AlreadyCompleted
    """
    with session.begin():
        job = _load_job_for_update(session, completion.job_id)
        if job.status == JobStatus.COMPLETED:
            return _repeated_completion(session, job, completion, caller)
        _require_holder(job, worker_id, lease_token, caller)
        frame = _stacked_frame(job, completion, now)
        catalog.fill_client_columns(session, frame, job)
        session.add(frame)
        _record_attempt(session, job, now, AttemptOutcome.COMPLETED, None)
        _guarded_update(
            session,
            job,
            JobStatus.PROCESSING,
            {
                "status": JobStatus.COMPLETED,
                "completed_at": now,
                "error_message": None,
                "lease_token": None,
                "lease_expires_at": None,
                "progress": 1.0,
            },
        )
        session.flush()
        frame_id = frame.id
        replaced = slot_chain.remove_replaced_stacks(session, job)
        # a ready-made stack's upload is never re-stacked: only raw frames are kept
        keep = restack_window_hours > 0 and job.kind == _STACK_KIND
        freed = retention.release_job_files(session, job.id, job.upload_session_id, keep=keep)
    return CompletionOutcome(
        job.id, frame_id, repeated=False, freed=freed, replaced_results=replaced
    )


def _repeated_completion(
    session: Session, job: StackingJob, completion: Completion, caller: WorkerCaller | None
) -> CompletionOutcome:
    """A completion of a job already completed: ``repeated`` if it reports the same
    result (a retry after a lost response), :class:`AlreadyCompleted` if not."""
    _require_same_credential(job, caller)
    existing = session.execute(
        select(StackedFrame).where(StackedFrame.stacking_job_id == job.id)
    ).scalar_one()
    if _same_result(existing, completion, job):
        return CompletionOutcome(job.id, existing.id, repeated=True)
    raise errors.AlreadyCompleted(
        f"job {job.id} was already completed with a different result ({existing.ucloud_path})"
    )


def _stacked_frame(job: StackingJob, completion: Completion, now: datetime) -> StackedFrame:
    """The ``stacked_frames`` row of a completion (the client columns not yet filled)."""
    return StackedFrame(
        stacking_job_id=job.id,
        user_id=job.user_id,
        object_name=job.object_name,
        chunk_key=job.chunk_key,
        telescope=job.telescope,
        filter_name=job.filter_name,
        ucloud_path=completion.ucloud_path,
        thumbnail_path=completion.thumbnail_path,
        n_frames_input=_or(completion.n_frames_input, job.frame_count),
        n_frames_aligned=_or(completion.n_frames_aligned, 0),
        total_exptime=completion.total_exptime,
        date_obs_start=completion.date_obs_start,
        date_obs_end=completion.date_obs_end,
        ra_deg=completion.ra_deg,
        dec_deg=completion.dec_deg,
        file_size_bytes=completion.file_size_bytes,
        n_stars_detected=completion.n_stars_detected,
        rejected_frames=(
            json.dumps([list(pair) for pair in completion.rejected_frames])
            if completion.rejected_frames
            else None
        ),
        worker_id=job.worker_id,
        created_at=now,
        **(completion.astrometry.columns() if completion.astrometry else {}),
    )


def fail_job(
    session: Session,
    now: datetime,
    *,
    job_id: int,
    error_message: str | None,
    backoff_seconds: float,
    worker_id: str | None = None,
    lease_token: str | None = None,
    caller: WorkerCaller | None = None,
) -> FailureOutcome:
    """Record a failed attempt: ``retry`` after a backoff, or ``failed`` after the last one.

    Raises
    ------
    JobNotFound, WrongState, HeldByOtherWorker
    """
    message = (error_message or "").strip() or DEFAULT_ERROR_MESSAGE
    with session.begin():
        job = _load_job_for_update(session, job_id)
        _require_holder(job, worker_id, lease_token, caller)
        return _fail_locked(session, job, now, message, backoff_seconds, AttemptOutcome.FAILED)


def release_job(
    session: Session,
    now: datetime,
    *,
    job_id: int,
    reason: str | None = None,
    worker_id: str | None = None,
    lease_token: str | None = None,
    caller: WorkerCaller | None = None,
) -> ReleaseOutcome:
    """Hand a held job back to the queue without counting a failed attempt.

    For a worker that stops (SIGTERM, maintenance) before finishing: the job is
    claimable again at once, as ``pending`` or, if it had failed before, ``retry``.
    The release is kept in the attempt history.

    Raises
    ------
    JobNotFound, WrongState, HeldByOtherWorker
    """
    message = ((reason or "").strip() or "released by the worker")[:MAX_ERROR_MESSAGE_CHARS]
    with session.begin():
        job = _load_job_for_update(session, job_id)
        _require_holder(job, worker_id, lease_token, caller)
        status = JobStatus.RETRY if job.retry_count else JobStatus.PENDING
        _record_attempt(session, job, now, AttemptOutcome.RELEASED, message)
        _guarded_update(
            session,
            job,
            JobStatus.PROCESSING,
            {
                "status": status,
                "not_before": None,
                "lease_token": None,
                "lease_expires_at": None,
                "progress": None,
                "progress_message": None,
            },
        )
    return ReleaseOutcome(job_id, status)


def reap_expired_leases(
    session: Session, now: datetime, *, backoff_seconds: float, limit: int = 100
) -> list[FailureOutcome]:
    """Return jobs whose lease expired to the queue, each counting as a failed attempt."""
    outcomes: list[FailureOutcome] = []
    with session.begin():
        expired = session.execute(
            select(StackingJob)
            .where(
                StackingJob.status == JobStatus.PROCESSING,
                StackingJob.lease_expires_at < now,
            )
            .order_by(StackingJob.lease_expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).scalars()
        for job in list(expired):
            message = LEASE_EXPIRED_MESSAGE.format(worker=job.worker_id or "?")
            outcomes.append(
                _fail_locked(
                    session, job, now, message, backoff_seconds, AttemptOutcome.LEASE_EXPIRED
                )
            )
    return outcomes


# -- internals ---------------------------------------------------------------------------


def _load_job_for_update(session: Session, job_id: int) -> StackingJob:
    job = session.execute(
        select(StackingJob).where(StackingJob.id == job_id).with_for_update()
    ).scalar_one_or_none()
    if job is None:
        raise errors.JobNotFound(f"job {job_id} does not exist")
    return job


def _require_holder(
    job: StackingJob,
    worker_id: str | None,
    lease_token: str | None,
    caller: WorkerCaller | None = None,
) -> None:
    """The job must be processing, claimed with the caller's credential and, when the
    caller names itself, held by the caller."""
    _require_same_credential(job, caller)
    if job.status != JobStatus.PROCESSING:
        raise errors.WrongState(f"job {job.id} is {job.status}, not processing")
    if worker_id is not None and job.worker_id != worker_id:
        raise errors.HeldByOtherWorker(
            f"job {job.id} is held by worker {job.worker_id!r}, not {worker_id!r}"
        )
    if lease_token is not None and not _same_token(job.lease_token, lease_token):
        raise errors.HeldByOtherWorker(
            f"job {job.id}: the lease token does not match; the lease was lost "
            "(it expired and the job was handed to another claim)"
        )


def _require_same_credential(job: StackingJob, caller: WorkerCaller | None) -> None:
    """A job claimed with a per-worker token answers only that token (and a job claimed
    with the shared key only the shared key); ``None`` is an internal, unchecked call."""
    if caller is not None and caller.token_name != job.holder_token:
        raise errors.HeldByOtherWorker(f"job {job.id} is not held by this worker credential")


def _same_token(held: str | None, presented: str) -> bool:
    """Constant-time comparison of any presented text (``compare_digest`` refuses non-ASCII str)."""
    return held is not None and secrets.compare_digest(
        held.encode("utf-8"), presented.encode("utf-8", "surrogatepass")
    )


def _guarded_update(
    session: Session, job: StackingJob, expected: JobStatus, values: dict[str, object]
) -> None:
    """Compare-and-set on (id, status); the row is locked, so a miss is a bug.

    Raises :class:`errors.IllegalMove` before writing when the status change is not
    in ``ALLOWED_MOVES`` (staying in ``expected``, e.g. a lease renewal, is no move).
    """
    target = values.get("status", expected)
    if target != expected:
        _require_move(job.id, expected, JobStatus(str(target)))
    changed = affected_rows(
        session.execute(
            update(StackingJob)
            .where(and_(StackingJob.id == job.id, StackingJob.status == expected))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    )
    if changed != 1:
        raise errors.WrongState(f"job {job.id} changed state concurrently")
    for key, value in values.items():
        setattr(job, key, value)


def _require_move(job_id: int, current: JobStatus, target: JobStatus) -> None:
    if target not in ALLOWED_MOVES[current]:
        raise errors.IllegalMove(f"job {job_id}: {current} → {target} is not an allowed move")


def _fail_locked(
    session: Session,
    job: StackingJob,
    now: datetime,
    message: str,
    backoff_seconds: float,
    outcome: AttemptOutcome,
) -> FailureOutcome:
    message = message[:MAX_ERROR_MESSAGE_CHARS]
    failed_attempts = job.retry_count + 1
    status = status_after_failure(failed_attempts)
    delay = retry_delay_seconds(failed_attempts, backoff_seconds)
    not_before = now + timedelta(seconds=delay) if status == JobStatus.RETRY else None
    _record_attempt(session, job, now, outcome, message)
    _guarded_update(
        session,
        job,
        JobStatus.PROCESSING,
        {
            "status": status,
            "retry_count": failed_attempts,
            "error_message": message,
            "not_before": not_before,
            "completed_at": now if status == JobStatus.FAILED else None,
            "lease_token": None,
            "lease_expires_at": None,
        },
    )
    if status == JobStatus.FAILED:  # a follow-up of the slot stacks these frames now
        retention.hand_over_frames(session, job.id)
    return FailureOutcome(job.id, status, failed_attempts, not_before)


def _record_attempt(
    session: Session,
    job: StackingJob,
    now: datetime,
    outcome: AttemptOutcome,
    message: str | None,
) -> None:
    session.add(
        JobAttempt(
            stacking_job_id=job.id,
            attempt=job.attempts,
            worker_id=job.worker_id,
            started_at=job.started_at,
            ended_at=now,
            outcome=outcome,
            error_message=message,
        )
    )


# How close a repeated completion's floats must be to the recorded ones. The columns
# are double precision (migration 0002), but a MariaDB row written before that was a
# single-precision FLOAT and reads back with 6 significant digits (relative error up to
# 5e-6); a retry of such a completion must still be answered ok. A different stack
# differs in its path, size or star count anyway.
_FLOAT_REPEAT_REL_TOL = 1e-5


def _same_result(existing: StackedFrame, completion: Completion, job: StackingJob) -> bool:
    """Whether a repeated completion reports the same stack as the recorded one."""
    pairs_exact = (
        (existing.ucloud_path, completion.ucloud_path),
        (existing.thumbnail_path, completion.thumbnail_path),
        (existing.n_frames_input, _or(completion.n_frames_input, job.frame_count)),
        (existing.n_frames_aligned, _or(completion.n_frames_aligned, 0)),
        (existing.file_size_bytes, completion.file_size_bytes),
        (existing.n_stars_detected, completion.n_stars_detected),
        (existing.date_obs_start, completion.date_obs_start),
        (existing.date_obs_end, completion.date_obs_end),
    )
    if any(a != b for a, b in pairs_exact):
        return False
    pairs_float = (
        (existing.total_exptime, completion.total_exptime),
        (existing.ra_deg, completion.ra_deg),
        (existing.dec_deg, completion.dec_deg),
    )
    return all(
        (a is None and b is None)
        or (
            a is not None
            and b is not None
            and math.isclose(a, b, rel_tol=_FLOAT_REPEAT_REL_TOL, abs_tol=1e-9)
        )
        for a, b in pairs_float
    )


def _or(value: int | None, default: int) -> int:
    return default if value is None else value
