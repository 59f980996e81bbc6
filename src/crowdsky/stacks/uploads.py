"""Stacks uploaded ready-made (``upload_stack.php``): validated, keyed and queued.

The app and the bot upload stacks made on the telescope. The later original server
queued them for post-processing instead of storing them as they came
(``clients.md``); so does this module: the stack is kept in the raw buffer as the
single file of a finalized upload session and a job of kind ``postprocess`` is
queued in the same queue as stacking jobs. The worker normalises it, measures its
stars and writes our thumbnail; the stack appears in ``my_stacks`` on completion.

Duplicates are decided like raw chunks: by chunk key and telescope. A second upload
of a key that already has a stack, or a queued job, is refused (``AlreadyUploaded``)
unless ``overwrite`` is set; then the earlier stack is removed and the new one queued.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from crowdsky.db.models import RawFile, StackedFrame, StackingJob, UploadSession
from crowdsky.ingest import chunking, filenames, scrub
from crowdsky.ingest.fits_headers import FrameHeader, read_frame_header
from crowdsky.queue import JobStatus, NewJob, enqueue_jobs
from crowdsky.stacks import errors, results
from crowdsky.storage.raw_store import PartialUpload, RawStore
from crowdsky.storage.result_reader import ResultReader

POSTPROCESS_KIND = "postprocess"
TOKEN_BYTES = 16
_ACTIVE = (JobStatus.PENDING.value, JobStatus.PROCESSING.value, JobStatus.RETRY.value)


@dataclass(frozen=True, slots=True)
class QueuedStack:
    """The answer to an upload: the post-processing job and the stack's chunk key."""

    job_id: int
    chunk_key: str
    replaced_stacks: int


def new_upload_dir(raw_store: RawStore, user_id: int) -> tuple[str, str]:
    """A fresh session token and its folder for receiving one uploaded stack."""
    token = secrets.token_hex(TOKEN_BYTES)
    return token, raw_store.session_dir(user_id, token)


@dataclass(frozen=True, slots=True)
class StackUpload:
    """One received stack and what its uploader asked for.

    ``partial`` is the received file (not yet finished): published or discarded by
    :func:`queue_uploaded_stack`. ``file_name`` is the client's name (checked; used in
    messages and the stored name); ``token`` names the upload's own session folder
    (:func:`new_upload_dir`).
    """

    user_id: int
    token: str
    partial: PartialUpload
    file_name: str
    scrub_location: bool = False
    overwrite: bool = False


@dataclass(frozen=True, slots=True)
class _CheckedStack:
    """A received stack that passed the checks: its safe name, hash, header and key."""

    name: str
    sha256: str
    header: FrameHeader
    chunk_key: str


def queue_uploaded_stack(
    session: Session,
    now: datetime,
    upload: StackUpload,
    *,
    raw_store: RawStore,
    key_format: chunking.KeyFormat = "healpix",
    result_store: ResultReader | None = None,
) -> QueuedStack:
    """Validate a received stack and queue its post-processing job.

    Parameters
    ----------
    upload
        The received stack and the uploader's ``overwrite`` and ``scrub_location``.
    raw_store, key_format
        Where the stack is kept until its job runs; the chunk key format.
    result_store
        Where the server reads results from, so that ``overwrite`` also deletes the
        files of a replaced stack (None: they stay).

    Raises
    ------
    InvalidFits, InvalidFileName
        Not a usable FITS image, or an unsafe name.
    AlreadyUploaded
        The chunk key of this telescope already has a stack or a queued job.
    """
    try:
        checked = _check_stack(upload, now, key_format)
        replaced = _make_room(
            session,
            upload.user_id,
            checked.chunk_key,
            checked.header.telescop,
            overwrite=upload.overwrite,
            result_store=result_store,
        )
        stored = raw_store.publish(upload.partial, filenames.storage_name(checked.name))
    except BaseException:
        upload.partial.discard()
        raise
    session_dir = raw_store.session_dir(upload.user_id, upload.token)
    with session.begin():
        upload_id, raw_id = _record_upload(session, now, upload, checked, stored, session_dir)
    header = checked.header
    job = NewJob(
        user_id=upload.user_id,
        upload_session_id=upload_id,
        chunk_key=checked.chunk_key,
        raw_file_ids=(raw_id,),
        object_name=header.object_name,
        telescope=header.telescop,
        filter_name=header.filter_name,
        exptime=header.exptime_s,
        kind=POSTPROCESS_KIND,
    )
    (job_id,) = enqueue_jobs(session, now, [job])
    return QueuedStack(job_id=job_id, chunk_key=checked.chunk_key, replaced_stacks=replaced)


def _check_stack(
    upload: StackUpload, now: datetime, key_format: chunking.KeyFormat
) -> _CheckedStack:
    """Name, hash and header of the received stack (its site scrubbed when asked)."""
    name = filenames.check_file_name(upload.file_name)
    sha256 = upload.partial.finish()
    header = read_frame_header(upload.partial.path, name, now=now)
    has_site = header.site_lat_deg is not None or header.site_long_deg is not None
    if upload.scrub_location and has_site:
        scrub.scrub_site_location(upload.partial.path)
    key = chunking.chunk_key(header.date_obs, header.ra_deg, header.dec_deg, key_format)
    return _CheckedStack(name, sha256, header, key)


def _record_upload(
    session: Session,
    now: datetime,
    upload: StackUpload,
    checked: _CheckedStack,
    stored: str,
    session_dir: str,
) -> tuple[int, int]:
    """The finalized one-file upload session and the stack's raw-file row; their ids."""
    header, size = checked.header, upload.partial.size
    row = UploadSession(
        user_id=upload.user_id,
        session_token=upload.token,
        object_name=header.object_name,
        ra_deg=header.ra_deg,
        dec_deg=header.dec_deg,
        file_count=1,
        total_size_bytes=size,
        status="complete",
        storage_path=session_dir,
        created_at=now,
        last_activity_at=now,
        completed_at=now,
    )
    session.add(row)
    session.flush()
    raw = RawFile(
        upload_session_id=row.id,
        filename=checked.name,
        storage_path=stored,
        file_size_bytes=size,
        sha256=checked.sha256,
        chunk_key=checked.chunk_key,
        created_at=now,
        **header.raw_file_columns(scrub_location=upload.scrub_location),
    )
    session.add(raw)
    session.flush()
    return row.id, raw.id


def _make_room(
    session: Session,
    user_id: int,
    key: str,
    telescope: str | None,
    *,
    overwrite: bool,
    result_store: ResultReader | None,
) -> int:
    """Refuse a duplicate, or (``overwrite``) delete the stacks it replaces."""
    same_telescope = (
        StackingJob.telescope.is_(None) if telescope is None else StackingJob.telescope == telescope
    )
    with session.begin():
        stacks = session.execute(
            select(StackedFrame.id, StackedFrame.ucloud_path, StackedFrame.thumbnail_path)
            .join(StackingJob, StackingJob.id == StackedFrame.stacking_job_id)
            .where(StackedFrame.user_id == user_id, StackedFrame.chunk_key == key, same_telescope)
        ).all()
        active = session.execute(
            select(StackingJob.id).where(
                StackingJob.user_id == user_id,
                StackingJob.chunk_key == key,
                same_telescope,
                StackingJob.status.in_(_ACTIVE),
            )
        ).scalars()
        queued = list(active)
        if not overwrite:
            if stacks:
                raise errors.AlreadyUploaded(
                    f"chunk {key} of this telescope already has stack {stacks[0].id}; "
                    "send overwrite=1 to replace it"
                )
            if queued:
                raise errors.AlreadyUploaded(
                    f"chunk {key} of this telescope is already queued as job {queued[0]}; "
                    "send overwrite=1 to queue it again"
                )
            return 0
        if stacks:
            session.execute(delete(StackedFrame).where(StackedFrame.id.in_([s.id for s in stacks])))
    if result_store is not None:
        results.discard_result_files(
            result_store, [p for _, fits, thumb in stacks for p in (fits, thumb) if p]
        )
    return len(stacks)
