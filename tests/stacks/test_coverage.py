"""The coverage cells (``stacks/coverage.py``) equal a fresh aggregate after every change.

Each step changes stacks through a real code path (a completion, the privacy
endpoint, an ORM edit, a job deletion, a bulk delete) and compares the kept cells
with the aggregate over ``stacked_frames`` that ``sky_coverage`` used to run.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, distinct, func, select

from crowdsky import stacks
from crowdsky.db.models import StackedFrame
from crowdsky.server.routes.data_api import ECSV_HEADER
from crowdsky.stacks.coverage import ecsv_row
from crowdsky.web import queries as web_queries
from tests.db_backends import TestDatabase
from tests.server.test_client_api import BOB, T0, Env, running_env


@pytest.fixture
def env(test_db: TestDatabase, tmp_path: Path) -> Iterator[Env]:
    with running_env(test_db, tmp_path) as built:
        yield built


def _fresh(env: Env) -> list[tuple[object, ...]]:
    name = func.coalesce(StackedFrame.filter_name, "")
    query = (
        select(
            StackedFrame.healpix,
            name,
            func.count(),
            func.sum(StackedFrame.total_exptime),
            func.count(distinct(StackedFrame.user_id)),
            func.min(StackedFrame.date_obs_start),
            func.max(StackedFrame.date_obs_start),
        )
        .where(StackedFrame.is_private.is_(False), StackedFrame.healpix.is_not(None))
        .group_by(StackedFrame.healpix, name)
        .order_by(StackedFrame.healpix, name)
    )
    with env.state.session_factory() as session:
        return [
            (int(r[0]), r[1], r[2], float(r[3]), r[4], r[5], r[6]) for r in session.execute(query)
        ]


def _kept(env: Env) -> list[tuple[object, ...]]:
    with env.state.session_factory() as session:
        return [
            (c.healpix_ring, c.filter_name, c.n_stacks, c.total_exptime_s, c.n_observers,
             c.first_obs, c.last_obs)
            for c in stacks.sky_coverage(session)
        ]  # fmt: skip


def _same(env: Env) -> list[tuple[object, ...]]:
    """The kept cells equal a fresh aggregate, and so does the ECSV answer's every line."""
    kept = _kept(env)
    fresh = _fresh(env)
    assert kept == fresh
    text = env.client.get("/api/sky_coverage.php").text
    assert text == ECSV_HEADER + "".join(ecsv_row(*row) for row in fresh)  # type: ignore[arg-type]
    return kept


def test_cells_follow_every_change(env: Env) -> None:
    assert _same(env) == []
    a1 = env.make_stack(when=T0)
    a2 = env.make_stack(when=T0 + timedelta(hours=1), exptime=20.0)
    b1 = env.make_stack("bob", when=T0 + timedelta(hours=2))
    env.make_stack("bob", filter_name="IRCUT")
    far = env.make_stack(ra=10.0, dec=-30.0)
    cells = _same(env)
    assert sorted(c[2] for c in cells) == [1, 1, 3]
    assert max(c[4] for c in cells) == 2  # two distinct observers in the shared cell
    # privacy through the endpoint: the cell shrinks, observers stay exact
    r = env.client.post("/api/stack_privacy.php", data={"id": b1, "private": "1"}, auth=BOB)
    assert r.status_code == 200, r.text
    assert max(c[4] for c in _same(env)) == 1
    env.client.post("/api/stack_privacy.php", data={"id": b1, "private": "0"}, auth=BOB)
    assert max(c[4] for c in _same(env)) == 2
    # an ORM edit that moves a stack to another tile: old cell and new cell
    with env.state.session_factory() as session, session.begin():
        row = session.get(StackedFrame, a2)
        assert row is not None
        row.healpix = 12345
    assert any(c[0] == 12345 for c in _same(env))
    # a job deleted from the web app (bulk DELETE statement on stacked_frames)
    alice = env.user_id("alice")
    with env.state.session_factory() as session, session.begin():
        job_id = session.get(StackedFrame, a1).stacking_job_id  # type: ignore[union-attr]
    with env.state.session_factory() as session:
        web_queries.delete_job(session, alice, job_id, env.state.raw_store, env.state.result_reader)
    _same(env)
    # an ORM delete and a bulk delete of everything
    with env.state.session_factory() as session, session.begin():
        session.delete(session.get(StackedFrame, far))
    _same(env)
    with env.state.session_factory() as session, session.begin():
        session.execute(delete(StackedFrame))
    assert _same(env) == []
    # rows that bypass the session are picked up by a rebuild; the lines on the next read
    gone = env.make_stack()
    env.make_stack(ra=10.0, dec=-30.0)
    with env.state.engine.begin() as connection:
        connection.execute(delete(StackedFrame.__table__).where(StackedFrame.id == gone))
        assert stacks.rebuild_coverage(connection) == 1
    assert len(_same(env)) == 1
