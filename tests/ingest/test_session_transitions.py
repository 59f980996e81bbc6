"""Session transitions (``ingest/session_transitions.py``): every move, every refused one."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from crowdsky import ingest
from crowdsky.db.models import RawFile, StackingJob, UploadSession
from crowdsky.db.types import utcnow
from crowdsky.ingest import session_transitions as moves
from crowdsky.ingest.session_states import ALLOWED_MOVES, SessionStatus, is_allowed_move
from tests.ingest.conftest import EXPIRY_HOURS, Intake
from tests.ingest.fits_factory import write_sequence

REFUSED = [
    (current, target)
    for current, target in itertools.product(SessionStatus, SessionStatus)
    if current != target and target not in ALLOWED_MOVES[current]
]


def _row(intake: Intake, token: str) -> tuple[str, int]:
    with intake.db.session_factory() as session, session.begin():
        row = session.execute(
            select(UploadSession).where(UploadSession.session_token == token)
        ).scalar_one()
        return row.status, row.file_count


def _set_status(intake: Intake, token: str, status: SessionStatus) -> int:
    with intake.db.session_factory() as session, session.begin():
        session.execute(
            update(UploadSession)
            .where(UploadSession.session_token == token)
            .values(status=status.value)
        )
        return session.execute(
            select(UploadSession.id).where(UploadSession.session_token == token)
        ).scalar_one()


def test_the_table_has_exactly_the_documented_moves() -> None:
    allowed = {(a, b) for a, targets in ALLOWED_MOVES.items() for b in targets}
    assert allowed == {
        (SessionStatus.UPLOADING, SessionStatus.COMPLETE),
        (SessionStatus.UPLOADING, SessionStatus.EXPIRED),
    }
    assert all(is_allowed_move(a, b) for a, b in allowed)
    assert not is_allowed_move("uploading", "no-such-status")
    assert not is_allowed_move(SessionStatus.COMPLETE, SessionStatus.UPLOADING), "no reopen"


def test_start_receive_finalize(intake: Intake) -> None:
    token = intake.start()
    assert _row(intake, token) == (SessionStatus.UPLOADING, 0)
    frames = write_sequence(intake.raw_store.root.parent / "night", 3)
    for path in frames:
        intake.send(token, path)
    intake.send(token, frames[0])  # a duplicate: activity, no count
    assert _row(intake, token) == (SessionStatus.UPLOADING, 3)
    result = intake.finalize(token)
    assert len(result.job_ids) == 1 and not result.repeated
    assert _row(intake, token) == (SessionStatus.COMPLETE, 3)
    with pytest.raises(ingest.SessionClosed, match="already finalized"):
        intake.send(token, frames[1])


def test_expire_moves_only_idle_uploading_sessions_and_releases_their_files(
    intake: Intake,
) -> None:
    frames = write_sequence(intake.raw_store.root.parent / "night", 3)
    idle, finalized = intake.upload(frames), intake.upload(frames)
    intake.finalize(finalized)
    later = utcnow() + timedelta(hours=EXPIRY_HOURS + 1)
    busy = intake.start(later)
    with intake.db.session_factory() as session:
        expired = ingest.expire_idle_sessions(session, later, expiry_hours=EXPIRY_HOURS)
    assert len(expired.session_ids) == 1 and len(expired.freed.paths) == 3
    assert _row(intake, idle)[0] == SessionStatus.EXPIRED
    assert _row(intake, finalized)[0] == SessionStatus.COMPLETE
    assert _row(intake, busy)[0] == SessionStatus.UPLOADING
    with intake.db.session_factory() as session, session.begin():
        flags = session.execute(
            select(RawFile.is_deleted)
            .join(UploadSession, UploadSession.id == RawFile.upload_session_id)
            .where(UploadSession.session_token == idle)
        ).scalars()
        assert set(flags) == {True}
    with pytest.raises(ingest.SessionClosed, match="expired"):
        intake.send(idle, frames[0], now=later)


@pytest.mark.parametrize(("current", "target"), REFUSED, ids=lambda s: str(s))
def test_a_move_outside_the_table_is_refused(
    intake: Intake, current: SessionStatus, target: SessionStatus
) -> None:
    token = intake.start()
    session_id = _set_status(intake, token, current)
    with (
        intake.db.session_factory() as session,
        session.begin(),
        pytest.raises(ingest.IllegalSessionMove),
    ):
        moves._move(session, session_id, current, target, {})
    assert _row(intake, token)[0] == current


@pytest.mark.parametrize("closed", [SessionStatus.COMPLETE, SessionStatus.EXPIRED])
def test_compare_and_set_refuses_a_session_that_moved_meanwhile(
    intake: Intake, closed: SessionStatus
) -> None:
    """A move from ``uploading`` finds the row elsewhere: nothing changes, it says why."""
    token = intake.start()
    session_id = _set_status(intake, token, closed)
    with (
        intake.db.session_factory() as session,
        session.begin(),
        pytest.raises(ingest.SessionClosed, match="no longer uploading"),
    ):
        moves.mark_finalized(session, session_id, utcnow())
    assert _row(intake, token)[0] == closed


def test_finalize_of_a_closed_session_is_refused(intake: Intake) -> None:
    token = intake.upload(write_sequence(intake.raw_store.root.parent / "n", 3))
    _set_status(intake, token, SessionStatus.EXPIRED)
    with pytest.raises(ingest.SessionClosed, match="expired"):
        intake.finalize(token)
    with intake.db.session_factory() as session, session.begin():
        assert session.execute(select(StackingJob)).first() is None


def test_the_open_session_limit_counts_only_open_sessions(intake: Intake) -> None:
    limit = 3
    intake.settings = ingest.IntakeSettings(min_frames=3, max_open_sessions=limit)

    def start(now=None):  # type: ignore[no-untyped-def]
        with intake.db.session_factory() as session:
            return ingest.start_session(
                session,
                now or utcnow(),
                user_id=intake.user_id,
                raw_store=intake.raw_store,
                max_open_sessions=limit,
                expiry_hours=EXPIRY_HOURS,
            )

    tokens = [start() for _ in range(limit)]
    with pytest.raises(ingest.TooManyOpenSessions, match="limit is 3"):
        start()
    intake.send(tokens[0], write_sequence(intake.raw_store.root.parent / "n", 1)[0])
    intake.finalize(tokens[0])  # a finalized session frees its place
    start()
    with pytest.raises(ingest.TooManyOpenSessions):
        start()
    # idle sessions no longer count (they take no files)
    later = utcnow() + timedelta(hours=EXPIRY_HOURS + 1)
    assert len({start(later) for _ in range(limit)}) == limit
