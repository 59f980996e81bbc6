"""Putting work into the queue without the upload API, for tests and benchmarks.

Seeding writes raw files into a real session folder and inserts the rows an upload
would create, then enqueues through :func:`crowdsky.queue.enqueue_jobs`. Claiming,
listing, downloading and completing then run the real code paths unchanged.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from crowdsky.db.models import RawFile, SlotLock, UploadSession, User
from crowdsky.db.types import utcnow
from crowdsky.ingest.session_states import SessionStatus
from crowdsky.queue import NewJob, enqueue_jobs
from crowdsky.storage.raw_store import RawStore

FITS_BLOCK = 2880
DEFAULT_USER = "seed-user"


def ensure_user(session: Session, username: str = DEFAULT_USER) -> int:
    """Id of a user with this name, created (unusable password) if missing."""
    with session.begin():
        user_id = session.execute(
            select(User.id).where(User.username == username)
        ).scalar_one_or_none()
        if user_id is not None:
            return user_id
        user = User(
            username=username,
            email=f"{username}@example.invalid",
            password_hash="!seeded-user-cannot-log-in",
        )
        session.add(user)
        session.flush()
        session.add(SlotLock(user_id=user.id))  # as accounts.create_user makes it
        return user.id


def seed_jobs(
    session_factory: sessionmaker[Session],
    raw_store: RawStore,
    *,
    n_jobs: int,
    files_per_job: int = 3,
    sources: Sequence[Path] | None = None,
    username: str = DEFAULT_USER,
    object_name: str = "M 94",
    now: datetime | None = None,
) -> list[int]:
    """Create ``n_jobs`` pending jobs in one finalized upload session.

    Parameters
    ----------
    session_factory, raw_store
        Where the rows and the files go.
    n_jobs, files_per_job
        How much work; each job gets its own files.
    sources
        Real FITS files to copy as each job's raws (cycled); without them every raw is
        one FITS block of placeholder bytes, enough for queue tests.
    now
        Creation time of the session and jobs (default: now).

    Returns
    -------
    list of int
        The job ids, oldest first.
    """
    now = now or utcnow()
    with session_factory() as session:
        user_id = ensure_user(session, username)
        with session.begin():
            seeded = _add_finalized_session(session, raw_store, user_id, object_name, now)
            specs = [
                [
                    _seed_raw(
                        session,
                        seeded,
                        job_index,
                        file_index,
                        sources,
                        counter=job_index * files_per_job + file_index,
                    )
                    for file_index in range(files_per_job)
                ]
                for job_index in range(n_jobs)
            ]
        new_jobs = [
            NewJob(
                user_id=user_id,
                upload_session_id=seeded.id,
                chunk_key=_chunk_key(i),
                raw_file_ids=tuple(ids),
                object_name=object_name,
                filter_name="IRCUT",
                exptime=10.0,
            )
            for i, ids in enumerate(specs)
        ]
        # one creation time for all: the queue orders ties by id, i.e. by creation order
        return enqueue_jobs(session, now, new_jobs)


@dataclass(frozen=True, slots=True)
class _SeededSession:
    """A finalized session created by :func:`seed_jobs`, and its folder."""

    id: int
    storage_path: str
    folder: Path
    object_name: str
    created_at: datetime


def _add_finalized_session(
    session: Session, raw_store: RawStore, user_id: int, object_name: str, now: datetime
) -> _SeededSession:
    """A new ``complete`` upload session row and its (created) folder."""
    token = secrets.token_hex(16)
    session_dir = raw_store.session_dir(user_id, token)
    folder = raw_store.resolve(session_dir)
    folder.mkdir(parents=True, exist_ok=True)
    upload = UploadSession(
        user_id=user_id,
        session_token=token,
        object_name=object_name,
        status=SessionStatus.COMPLETE,
        storage_path=session_dir,
        created_at=now,
        last_activity_at=now,
        completed_at=now,
    )
    session.add(upload)
    session.flush()
    return _SeededSession(upload.id, session_dir, folder, object_name, now)


def _seed_raw(
    session: Session,
    seeded: _SeededSession,
    job_index: int,
    file_index: int,
    sources: Sequence[Path] | None,
    *,
    counter: int,
) -> int:
    """Write one raw file into the session's folder and add its row; the row's id.

    ``counter`` numbers the session's files, so ``sources`` are cycled across jobs.
    """
    name = f"job{job_index:05d}_frame{file_index:03d}.fit"
    target = seeded.folder / name
    if sources:
        shutil.copyfile(sources[counter % len(sources)], target)
    else:
        text = f"SIMPLE  = T seeded {job_index} {file_index}"
        target.write_bytes(text.encode().ljust(FITS_BLOCK, b" "))
    data = target.read_bytes()
    raw = RawFile(
        upload_session_id=seeded.id,
        filename=name,
        storage_path=f"{seeded.storage_path}/{name}",
        file_size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        fits_date_obs=seeded.created_at + timedelta(seconds=11.3 * file_index),
        fits_object=seeded.object_name,
        fits_exptime=10.0,
        fits_ra=192.72,
        fits_dec=41.12,
        chunk_key=_chunk_key(job_index),
        created_at=seeded.created_at,
    )
    session.add(raw)
    session.flush()
    return raw.id


def _chunk_key(job_index: int) -> str:
    """A classic chunk key per job: one 15-minute slot each, 96 a day."""
    return f"20250327.{job_index % 96:02d}_192.7_+41.1"


def seed_open_session(
    session_factory: sessionmaker[Session],
    raw_store: RawStore,
    *,
    n_frames: int,
    username: str = DEFAULT_USER,
    start: datetime,
    cadence_s: float = 10.0,
    object_name: str = "M 94",
    now: datetime | None = None,
) -> str:
    """An ``uploading`` session holding ``n_frames`` stored frames, as uploads leave it.

    Each frame is one FITS block of distinct placeholder bytes (finalize reads the
    recorded header values, never the pixels) taken every ``cadence_s`` from ``start``
    at one pointing. Rows are inserted in bulk, so thousands of frames take a moment.
    Returns the session token; finalize it through the real upload API.
    """
    now = now or utcnow()
    with session_factory() as session:
        user_id = ensure_user(session, username)
        token = secrets.token_hex(16)
        session_dir = raw_store.session_dir(user_id, token)
        folder = raw_store.resolve(session_dir)
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for index in range(n_frames):
            name = f"Light_{index:05d}.fit"
            data = f"SIMPLE  = T seeded {token} {index}".encode().ljust(FITS_BLOCK, b" ")
            (folder / name).write_bytes(data)
            rows.append(
                {
                    "filename": name,
                    "storage_path": f"{session_dir}/{name}",
                    "file_size_bytes": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "fits_date_obs": start + timedelta(seconds=cadence_s * index),
                    "fits_object": object_name,
                    "fits_exptime": 10.0,
                    "fits_ra": 192.72,
                    "fits_dec": 41.12,
                    "fits_filter": "IRCUT",
                    "fits_telescop": "Seestar S50",
                    "created_at": now,
                    "is_deleted": False,
                }
            )
        with session.begin():
            upload = UploadSession(
                user_id=user_id,
                session_token=token,
                object_name=object_name,
                status=SessionStatus.UPLOADING,
                storage_path=session_dir,
                file_count=n_frames,
                total_size_bytes=n_frames * FITS_BLOCK,
                created_at=now,
                last_activity_at=now,
            )
            session.add(upload)
            session.flush()
            for row in rows:
                row["upload_session_id"] = upload.id
            if rows:
                session.execute(insert(RawFile), rows)
    return token
