"""The client-facing facts of a stack, written once when its job completes, and privacy.

The later original server's clients read, beside what the stacker measured, a
``telescope_id`` they filter by, the mount's ``eq_mode``, the sky brightness
``sqm``, the NSIDE 128 RING pixel the data API searches, and whether the stack is
private (``clients.md``). :func:`fill_client_columns` derives them from the job's own
frames inside the completion's transaction, so a stack is never visible without them.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crowdsky.db.models import RawFile, StackedFrame, StackingJob, Telescope, User
from crowdsky.stacks import errors

#: Telescope name recorded when no frame names one (TELESCOP missing).
UNKNOWN_TELESCOPE = "unknown"
MAX_TELESCOPE_CHARS = 64


def fill_client_columns(session: Session, frame: StackedFrame, job: StackingJob) -> None:
    """Set ``telescope_id``, ``eq_mode``, ``healpix``, ``is_private`` and
    ``location_scrubbed`` on a new ``stacked_frames`` row, inside the caller's
    transaction (the completion's).

    ``eq_mode`` is the value most frames of the job carry; the pixel is that of the
    stack's own position, so it is set whatever the chunk key's format: the plate
    solution's centre when the worker solved the stack (which then also gives the
    SQM; ``ra_deg``/``dec_deg`` stay as the worker sent them, the spec's fields), else
    that of the mean pointing the worker reports.
    """
    rows = session.execute(
        select(RawFile.fits_eqmode, RawFile.fits_sitelat, RawFile.fits_sitelong).where(
            RawFile.stacking_job_id == job.id
        )
    ).all()
    modes = Counter(mode for mode, _, _ in rows if mode is not None)
    frame.eq_mode = modes.most_common(1)[0][0] if modes else None
    frame.location_scrubbed = bool(rows) and all(
        lat is None and lon is None for _, lat, lon in rows
    )
    # imported here: crowdsky.ingest imports the queue, whose completion calls this
    from crowdsky.ingest.chunking import healpix_ring_pixel

    if frame.plate_solved and frame.wcs_healpix is not None:
        # the solved centre, not the mount's header (wrong by up to a quarter degree)
        frame.healpix = frame.wcs_healpix
        frame.sqm = frame.phot_sqm if frame.sqm is None else frame.sqm
    elif frame.ra_deg is not None and frame.dec_deg is not None:
        frame.healpix = healpix_ring_pixel(frame.ra_deg, frame.dec_deg)
    frame.telescope_id = telescope_id(session, job.user_id, job.telescope)
    private = session.execute(select(User.stacks_private).where(User.id == job.user_id))
    frame.is_private = bool(private.scalar_one_or_none())


def telescope_id(session: Session, user_id: int, name: str | None) -> int:
    """The id of the user's telescope called ``name``, created on first sight.

    Runs in the caller's transaction; a concurrent creation of the same telescope
    (two completions at once) is resolved by reading the winner's row.
    """
    label = (name or "").strip()[:MAX_TELESCOPE_CHARS] or UNKNOWN_TELESCOPE
    query = select(Telescope.id).where(Telescope.user_id == user_id, Telescope.name == label)
    found = session.execute(query).scalar_one_or_none()
    if found is not None:
        return found
    try:
        with session.begin_nested():
            row = Telescope(user_id=user_id, name=label)
            session.add(row)
            session.flush()
            return row.id
    except IntegrityError:
        return session.execute(query).scalar_one()


def set_stack_private(session: Session, *, user_id: int, stack_id: int, private: bool) -> None:
    """Mark one of the user's stacks private or published.

    Raises
    ------
    StackNotFound
        When the stack does not exist or is another user's (the same answer, so
        that ids of other users' stacks reveal nothing).
    """
    with session.begin():
        mine = (StackedFrame.id == stack_id) & (StackedFrame.user_id == user_id)
        if session.execute(select(func.count()).where(mine)).scalar_one() == 0:
            raise errors.StackNotFound(f"stack {stack_id} does not exist")
        session.execute(
            update(StackedFrame)
            .where(mine)
            .values(is_private=private)
            .execution_options(synchronize_session=False)
        )


def set_default_private(session: Session, *, user_id: int, private: bool) -> None:
    """Whether the user's future stacks start private (existing ones keep their flag)."""
    with session.begin():
        session.execute(
            update(User)
            .where(User.id == user_id)
            .values(stacks_private=private)
            .execution_options(synchronize_session=False)
        )


def default_private(session: Session, *, user_id: int) -> bool:
    """Whether the user's new stacks start private."""
    with session.begin():
        value = session.execute(select(User.stacks_private).where(User.id == user_id))
        return bool(value.scalar_one_or_none())
