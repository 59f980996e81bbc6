"""The database reads and writes behind the web pages (one function per question).

Stacks are returned as compact column arrays so a page with 10,000 stacks loads in
one small JSON document; optional facts (filter, telescope) may be absent. Deletions
refuse a job that a worker holds, so nothing it publishes later is orphaned.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from crowdsky.db.models import (
    JobAttempt,
    RawFile,
    StackedFrame,
    StackingJob,
    UploadSession,
    User,
    UserPreferences,
    WorkerToken,
)
from crowdsky.healpix import healpix_ring_pixels
from crowdsky.ingest import shared_frames, slots
from crowdsky.stacks import SKY_DEC_DEG, SKY_RA_DEG, discard_result_files
from crowdsky.storage import RawStore
from crowdsky.storage.result_reader import ResultReader

#: HEALPix resolutions of the aggregated sky map, coarse to fine.
MAP_NSIDES = (4, 16, 64)
SESSION_LIMIT = 50
FAILURE_LIMIT = 30


class NotFound(Exception):
    """No such item for this user."""


class Conflict(Exception):
    """The item cannot be changed in its current state."""


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with ``Z``, or None."""
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


# -- stacks ------------------------------------------------------------------------------

STACK_COLUMNS = (
    "id",
    "job_id",
    "object",
    "chunk_key",
    "filter",
    "telescope",
    "ra",
    "dec",
    "start",
    "end",
    "frames",
    "aligned",
    "exptime",
    "stars",
    "size",
    "thumb",
    "solved",
    "solve_message",
    "scale",
    "rotation",
    "residual",
    "mount_ra",
    "mount_dec",
)


def stacks_version(session: Session, user_id: int) -> str:
    """A cheap value that changes whenever the user's stacks change (count, newest id)."""
    with session.begin():
        count, newest, latest = session.execute(
            select(
                func.count(), func.max(StackedFrame.id), func.max(StackedFrame.created_at)
            ).where(StackedFrame.user_id == user_id)
        ).one()
    stamp = latest.timestamp() if latest is not None else 0
    return f"{user_id}-{count}-{newest or 0}-{stamp:.6f}"


def user_stacks(session: Session, user_id: int) -> dict[str, Any]:
    """Every stack of a user as column arrays, newest observation first.

    Reads through Core (no ORM identity map): 10,000 rows are a few tens of ms.
    """
    table = StackedFrame.__table__
    c = table.c
    with session.begin():
        rows = session.execute(
            select(
                c.id,
                c.stacking_job_id,
                c.object_name,
                c.chunk_key,
                c.filter_name,
                c.telescope,
                SKY_RA_DEG,
                SKY_DEC_DEG,
                c.date_obs_start,
                c.date_obs_end,
                c.n_frames_input,
                c.n_frames_aligned,
                c.total_exptime,
                c.n_stars_detected,
                c.file_size_bytes,
                c.thumbnail_path.is_not(None),
                c.plate_solved,
                c.solve_message,
                c.wcs_scale_arcsec,
                c.wcs_rotation_deg,
                c.wcs_rms_arcsec,
                c.ra_deg,
                c.dec_deg,
            )
            .where(c.user_id == user_id)
            .order_by(c.date_obs_start.desc(), c.id.desc())
        ).all()
    columns: dict[str, list[Any]] = (
        {
            name: list(values)
            for name, values in zip(STACK_COLUMNS, zip(*rows, strict=True), strict=True)
        }
        if rows
        else {name: [] for name in STACK_COLUMNS}
    )
    columns["start"] = [iso(v) for v in columns["start"]]
    columns["end"] = [iso(v) for v in columns["end"]]
    columns["thumb"] = [bool(v) for v in columns["thumb"]]
    return {"count": len(rows), "columns": columns, "cells": sky_cells(columns)}


def sky_cells(columns: dict[str, list[Any]]) -> dict[str, list[list[Any]]]:
    """Stacks aggregated per HEALPix cell at each of :data:`MAP_NSIDES`.

    Each cell is ``[pixel, count, mean RA, mean Dec, most common filter]``; the mean RA
    is taken relative to the cell's first member so cells across RA 0/360 stay in place.
    """
    keep = [
        i
        for i, (ra, dec) in enumerate(zip(columns["ra"], columns["dec"], strict=True))
        if ra is not None and dec is not None
    ]
    ra = np.array([columns["ra"][i] for i in keep], dtype=float)
    dec = np.array([columns["dec"][i] for i in keep], dtype=float)
    names = [columns["filter"][i] for i in keep]
    filter_names = sorted({n for n in names if n is not None})
    codes = {None: 0, **{n: k + 1 for k, n in enumerate(filter_names)}}
    labels: list[str | None] = [None, *filter_names]
    filter_code = np.array([codes[n] for n in names], dtype=np.int64)
    out: dict[str, list[list[Any]]] = {}
    for nside in MAP_NSIDES:
        if not keep:
            out[str(nside)] = []
            continue
        pixels = healpix_ring_pixels(ra, dec, nside)
        cells, first, inverse, counts = np.unique(
            pixels, return_index=True, return_inverse=True, return_counts=True
        )
        offsets = (ra - ra[first][inverse] + 180.0) % 360.0 - 180.0
        ra_mean = (ra[first] + np.bincount(inverse, offsets) / counts) % 360.0
        dec_mean = np.bincount(inverse, dec) / counts
        votes = np.bincount(
            inverse * len(labels) + filter_code, minlength=len(cells) * len(labels)
        ).reshape(len(cells), len(labels))
        top = votes.argmax(axis=1)
        out[str(nside)] = [
            [int(p), int(n), round(float(r), 4), round(float(d), 4), labels[int(t)]]
            for p, n, r, d, t in zip(cells, counts, ra_mean, dec_mean, top, strict=True)
        ]
    return out


@dataclass(frozen=True, slots=True)
class StackFile:
    """Where one stack's files are, and the name to give it."""

    id: int
    fits_path: str
    thumbnail_path: str | None
    download_name: str


def stack_files(session: Session, user_id: int, stack_ids: list[int]) -> list[StackFile]:
    """The result paths of a user's stacks (another user's ids are silently absent)."""
    with session.begin():
        rows = session.execute(
            select(
                StackedFrame.id,
                StackedFrame.ucloud_path,
                StackedFrame.thumbnail_path,
                StackedFrame.chunk_key,
            ).where(StackedFrame.user_id == user_id, StackedFrame.id.in_(stack_ids))
        ).all()
    files = []
    for row in rows:
        base = row.ucloud_path.rsplit("/", 1)[-1] or f"stack-{row.id}.fits"
        files.append(StackFile(row.id, row.ucloud_path, row.thumbnail_path, base))
    order = {sid: i for i, sid in enumerate(stack_ids)}
    return sorted(files, key=lambda f: order[f.id])


def public_coverage(session: Session) -> list[list[Any]]:
    """Sky coverage of the stacks that are not private: HEALPix nside-16 cells."""
    with session.begin():
        rows = session.execute(
            select(SKY_RA_DEG, SKY_DEC_DEG, StackedFrame.filter_name).where(
                StackedFrame.is_private.is_(False),
                SKY_RA_DEG.is_not(None),
                SKY_DEC_DEG.is_not(None),
            )
        ).all()
    columns = {
        "ra": [r[0] for r in rows],
        "dec": [r[1] for r in rows],
        "filter": [r[2] for r in rows],
    }
    return sky_cells(columns)["16"]


# -- upload sessions and jobs ------------------------------------------------------------


def user_sessions(
    session: Session, user_id: int, limit: int = SESSION_LIMIT
) -> list[dict[str, Any]]:
    """A user's newest upload sessions with their job counts."""
    with session.begin():
        rows = session.execute(
            select(UploadSession)
            .where(UploadSession.user_id == user_id)
            .order_by(UploadSession.created_at.desc(), UploadSession.id.desc())
            .limit(limit)
        ).scalars()
        sessions = list(rows)
        ids = [s.id for s in sessions]
        counts = dict(
            session.execute(
                select(StackingJob.upload_session_id, func.count())
                .where(StackingJob.upload_session_id.in_(ids))
                .group_by(StackingJob.upload_session_id)
            ).all()
        )
        return [
            {
                "id": s.id,
                "status": s.status,
                "object": s.object_name,
                "files": s.file_count,
                "size": s.total_size_bytes,
                "created": iso(s.created_at),
                "last_activity": iso(s.last_activity_at),
                "completed": iso(s.completed_at),
                "jobs": counts.get(s.id, 0),
            }
            for s in sessions
        ]


def delete_job(
    session: Session, user_id: int, job_id: int, raw_store: RawStore, results: ResultReader | None
) -> None:
    """Delete a user's job, its raw frames and its stack (not while a worker holds it).

    Raises
    ------
    NotFound
    Conflict
        The job is being processed.
    """
    with session.begin():
        job = session.get(StackingJob, job_id)
        if job is None or job.user_id != user_id:
            raise NotFound(f"no job {job_id}")
        if job.status == "processing":
            raise Conflict(f"job {job_id} is being processed; delete it when it has finished")
        slots.lock_user(session, user_id)  # no finalize moves frames of the slot meanwhile
        foreign = shared_frames.foreign_frames_of(session, [job_id])
        if job.status in shared_frames.QUEUED and foreign:
            raise Conflict(
                f"job {job_id} also holds frames of upload session {foreign[0].owner}, "
                "queued to be stacked with its slot; delete it when it has been stacked"
            )
        raws, outputs = _job_files(session, [job_id])
        session.execute(delete(RawFile).where(RawFile.stacking_job_id == job_id))
        session.execute(delete(StackedFrame).where(StackedFrame.stacking_job_id == job_id))
        session.execute(delete(JobAttempt).where(JobAttempt.stacking_job_id == job_id))
        session.delete(job)
    _remove_files(raw_store, raws, results, outputs)


def delete_upload_session(
    session: Session,
    user_id: int,
    session_id: int,
    raw_store: RawStore,
    results: ResultReader | None,
) -> None:
    """Delete an upload session with all its files, jobs and stacks.

    Raises
    ------
    NotFound
    Conflict
        One of its jobs is being processed.
    """
    with session.begin():
        row = session.get(UploadSession, session_id)
        if row is None or row.user_id != user_id:
            raise NotFound(f"no upload session {session_id}")
        jobs = list(
            session.execute(
                select(StackingJob.id, StackingJob.status).where(
                    StackingJob.upload_session_id == session_id
                )
            ).all()
        )
        if any(status == "processing" for _, status in jobs):
            raise Conflict("a job of this session is being processed; try again when it ends")
        job_ids = [job_id for job_id, _ in jobs]
        slots.lock_user(session, user_id)  # no finalize moves frames of the slot meanwhile
        refusal = shared_frames.detach_session(session, session_id, job_ids)
        if refusal:
            raise Conflict(refusal)
        _, outputs = _job_files(session, job_ids)
        session.execute(delete(StackedFrame).where(StackedFrame.stacking_job_id.in_(job_ids)))
        session.execute(delete(JobAttempt).where(JobAttempt.stacking_job_id.in_(job_ids)))
        session.execute(delete(RawFile).where(RawFile.upload_session_id == session_id))
        session.execute(delete(StackingJob).where(StackingJob.upload_session_id == session_id))
        storage = row.storage_path
        session.delete(row)
    with contextlib.suppress(OSError, ValueError):
        raw_store.remove_dir(storage)
    _remove_files(raw_store, [], results, outputs)


def _job_files(session: Session, job_ids: list[int]) -> tuple[list[str], list[str]]:
    raws = list(
        session.execute(
            select(RawFile.storage_path).where(
                RawFile.stacking_job_id.in_(job_ids), RawFile.is_deleted.is_(False)
            )
        ).scalars()
    )
    outputs: list[str] = []
    for fits_path, thumb in session.execute(
        select(StackedFrame.ucloud_path, StackedFrame.thumbnail_path).where(
            StackedFrame.stacking_job_id.in_(job_ids)
        )
    ):
        outputs += [p for p in (fits_path, thumb) if p]
    return raws, outputs


def _remove_files(
    raw_store: RawStore, raws: list[str], results: ResultReader | None, outputs: list[str]
) -> None:
    """After the commit: the raws, and the stacks' files when a result store is given."""
    with contextlib.suppress(OSError, ValueError):
        raw_store.delete_files(raws)
    if results is not None:
        discard_result_files(results, outputs)


# -- account -----------------------------------------------------------------------------


def preferences(session: Session, user_id: int) -> dict[str, bool]:
    """A user's defaults (all off without a row)."""
    with session.begin():
        row = session.get(UserPreferences, user_id)
        private = session.execute(select(User.stacks_private).where(User.id == user_id))
        return {
            "stacks_public": not private.scalar_one_or_none(),
            "scrub_location": bool(row.scrub_location) if row else False,
        }


def set_preferences(
    session: Session, now: datetime, user_id: int, *, stacks_public: bool, scrub_location: bool
) -> None:
    """Store a user's defaults."""
    with session.begin():
        row = session.get(UserPreferences, user_id)
        if row is None:
            row = UserPreferences(user_id=user_id)
            session.add(row)
        row.scrub_location = scrub_location
        # the privacy default lives on the user row, where the completion reads it
        session.execute(
            update(User).where(User.id == user_id).values(stacks_private=not stacks_public)
        )
        row.updated_at = now


def telescopes_seen(session: Session, user_id: int) -> list[dict[str, Any]]:
    """The telescopes (TELESCOP, INSTRUME) in a user's uploads, with frame counts."""
    with session.begin():
        rows = session.execute(
            select(
                RawFile.fits_telescop,
                RawFile.fits_instrume,
                func.count(),
                func.max(RawFile.fits_date_obs),
            )
            .join(UploadSession, UploadSession.id == RawFile.upload_session_id)
            .where(UploadSession.user_id == user_id)
            .group_by(RawFile.fits_telescop, RawFile.fits_instrume)
            .order_by(func.count().desc())
        ).all()
    return [
        {"telescope": t, "instrument": i, "frames": n, "last": iso(last)} for t, i, n, last in rows
    ]


def change_password(session: Session, now: datetime, user_id: int, password_hash: str) -> None:
    """Store a new password hash (every other session ends: its fingerprint changes)."""
    with session.begin():
        user = session.get(User, user_id)
        if user is None:
            raise NotFound("no such user")
        user.password_hash = password_hash
        user.updated_at = now


# -- operations --------------------------------------------------------------------------


def operations(session: Session, now: datetime, uploads_dir: Path) -> dict[str, Any]:
    """Queue depth, workers, throughput, failures and raw buffer use, for admins."""
    with session.begin():
        depth = dict(
            session.execute(
                select(StackingJob.status, func.count()).group_by(StackingJob.status)
            ).all()
        )
        workers = _workers_seen(session)
        hours = _completions_per_hour(session, now)
        failures = session.execute(
            select(
                JobAttempt.stacking_job_id,
                JobAttempt.worker_id,
                JobAttempt.ended_at,
                JobAttempt.outcome,
                JobAttempt.error_message,
            )
            .where(JobAttempt.outcome != "completed")
            .order_by(JobAttempt.ended_at.desc())
            .limit(FAILURE_LIMIT)
        ).all()
        raw_bytes, raw_files = session.execute(
            select(func.coalesce(func.sum(RawFile.file_size_bytes), 0), func.count()).where(
                RawFile.is_deleted.is_(False)
            )
        ).one()
    disk = shutil.disk_usage(uploads_dir) if uploads_dir.exists() else None
    return {
        "depth": {
            s: depth.get(s, 0) for s in ("pending", "processing", "retry", "failed", "completed")
        },
        "workers": sorted(
            ({**w, "last_seen": iso(w["last_seen"])} for w in workers.values()),
            key=lambda w: w["last_seen"] or "",
            reverse=True,
        ),
        "jobs_per_hour": hours,
        "failures": [
            {"job": j, "worker": w, "at": iso(at), "outcome": o, "error": e}
            for j, w, at, o, e in failures
        ],
        "raw_buffer": {
            "bytes": int(raw_bytes),
            "files": int(raw_files),
            "disk_free": disk.free if disk else None,
            "disk_total": disk.total if disk else None,
        },
    }


def _workers_seen(session: Session) -> dict[str, dict[str, Any]]:
    """Every worker known from its attempts, its current job or its token, with the
    latest moment it was seen and the job it holds."""
    workers: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        return workers.setdefault(name, {"worker": name, "last_seen": None, "job": None})

    def seen(name: str, moment: datetime | None) -> None:
        current = entry(name)
        if moment is not None and (current["last_seen"] is None or moment > current["last_seen"]):
            current["last_seen"] = moment

    for worker_id, last in session.execute(
        select(JobAttempt.worker_id, func.max(JobAttempt.ended_at))
        .where(JobAttempt.worker_id.is_not(None))
        .group_by(JobAttempt.worker_id)
    ):
        workers[worker_id] = {"worker": worker_id, "last_seen": last, "job": None}
    for job in session.execute(
        select(StackingJob).where(StackingJob.status == "processing")
    ).scalars():
        name = job.worker_id or "?"
        seen(name, job.heartbeat_at or job.started_at)
        workers[name]["job"] = job.id
        workers[name]["progress"] = job.progress
    for name, last_used in session.execute(
        select(WorkerToken.name, WorkerToken.last_used_at).where(WorkerToken.revoked_at.is_(None))
    ):
        seen(name, last_used)
    return workers


def _completions_per_hour(session: Session, now: datetime) -> list[int]:
    """Jobs completed in each of the last 24 hours, oldest hour first."""
    since = now - timedelta(hours=24)
    completed = session.execute(
        select(StackingJob.completed_at).where(
            StackingJob.status == "completed", StackingJob.completed_at >= since
        )
    ).scalars()
    hours = [0] * 24
    for moment in completed:
        index = int((now - moment).total_seconds() // 3600)
        if 0 <= index < 24:
            hours[23 - index] += 1
    return hours
