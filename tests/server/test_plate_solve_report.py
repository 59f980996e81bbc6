"""complete_job's optional plate-solve fields reach the stack row (every backend)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from crowdsky.db.models import StackedFrame
from tests.db_backends import TestDatabase
from tests.server.conftest import Api
from tests.server.test_worker_api import _complete_body

SOLVED = {
    "plate_solved": True,
    "solve_message": "solved (hinted, index-tycho2-07.littleendian.fits): 15 stars, RMS 0.53″",
    "wcs_ra_deg": 192.7708840796,
    "wcs_dec_deg": 41.1160089779,
    "wcs_healpix": 33810,
    "wcs_scale_arcsec": 2.37598,
    "wcs_rotation_deg": 181.2823,
    "wcs_rms_arcsec": 0.533,
    "wcs_n_matched": 15,
    "wcs_corners": [[193.2, 40.6], [192.4, 40.6], [192.3, 41.6], [193.2, 41.6]],
    "wcs_healpix_pixels": [33297, 33298, 33809, 33810, 34322],
    "phot_zp_r": 20.24,
    "phot_zp_g": 20.52,
    "phot_zp_b": 19.85,
    "phot_zp_scatter": 0.14,
    "phot_n_stars": 13,
    "phot_limit_mag": 16.07,
    "phot_sqm": 18.4,
}


def _row(test_db: TestDatabase) -> StackedFrame:
    with test_db.session_factory() as session:
        return session.execute(select(StackedFrame)).scalar_one()


def test_the_solution_is_recorded_on_the_stack_row(api: Api, test_db: TestDatabase) -> None:
    api.seed()
    job = api.claim()
    body = _complete_body(job["job_id"], lease_token=job["lease_token"], **SOLVED)
    reply = api.client.post("/api/complete_job.php", json=body, headers=api.headers)
    assert reply.status_code == 200, reply.text
    row = _row(test_db)
    assert row.plate_solved is True
    assert row.solve_message == SOLVED["solve_message"]
    assert row.wcs_healpix == 33810 and row.wcs_n_matched == 15 and row.phot_n_stars == 13
    for key in ("wcs_ra_deg", "wcs_dec_deg", "wcs_scale_arcsec", "phot_zp_g", "phot_sqm"):
        assert getattr(row, key) == pytest.approx(SOLVED[key], rel=1e-9), key
    assert json.loads(row.wcs_corners) == SOLVED["wcs_corners"]
    assert json.loads(row.wcs_healpix_pixels) == SOLVED["wcs_healpix_pixels"]
    assert row.ra_deg == pytest.approx(192.72)  # the spec's field is left as sent
    # the client-facing pixel and sky brightness come from the solution
    assert row.healpix == 33810 and row.sqm == pytest.approx(SOLVED["phot_sqm"])


def test_clients_see_the_solved_position_and_unsolved_stacks_the_reported_one(
    api: Api, test_db: TestDatabase
) -> None:
    from crowdsky.stacks import iter_user_stacks

    api.seed(n_jobs=2)
    for facts in (SOLVED, {"plate_solved": False, "solve_message": "too few stars"}):
        job = api.claim()
        body = _complete_body(job["job_id"], lease_token=job["lease_token"], **facts)
        assert api.client.post("/api/complete_job.php", json=body, headers=api.headers).is_success
    with test_db.session_factory() as session:
        rows = {r.stacking_job_id: r for r in session.execute(select(StackedFrame)).scalars()}
    solved, unsolved = (rows[k] for k in sorted(rows))
    listed = {
        r.id: (r.ra_deg, r.dec_deg)
        for batch in iter_user_stacks(test_db.session_factory, user_id=solved.user_id)
        for r in batch
    }
    assert listed[solved.id] == pytest.approx((SOLVED["wcs_ra_deg"], SOLVED["wcs_dec_deg"]))
    assert listed[unsolved.id] == pytest.approx((unsolved.ra_deg, unsolved.dec_deg))


def test_an_unsolved_stack_records_why(api: Api, test_db: TestDatabase) -> None:
    api.seed()
    job = api.claim()
    reason = "no match in the Tycho-2 index for 150 stars: another field, " + "x" * 300
    body = _complete_body(
        job["job_id"], lease_token=job["lease_token"], plate_solved=False, solve_message=reason
    )
    assert api.client.post("/api/complete_job.php", json=body, headers=api.headers).is_success
    row = _row(test_db)
    assert row.plate_solved is False
    assert row.solve_message == reason[:255]
    assert row.wcs_ra_deg is None and row.phot_zp_g is None


def test_a_report_without_the_fields_leaves_them_empty(api: Api, test_db: TestDatabase) -> None:
    api.seed()
    job = api.claim()
    body = _complete_body(job["job_id"], lease_token=job["lease_token"])
    assert api.client.post("/api/complete_job.php", json=body, headers=api.headers).is_success
    row = _row(test_db)
    assert row.plate_solved is None and row.solve_message is None and row.wcs_healpix is None


@pytest.mark.parametrize(
    "bad",
    [
        {"wcs_dec_deg": 91.0},
        {"wcs_healpix": 196608},
        {"phot_sqm": float("nan")},
        {"wcs_corners": [[1.0, 2.0]] * 3},
        {"wcs_corners": [[1.0, 95.0]] * 4},
        {"wcs_healpix_pixels": [-1]},
        {"wcs_healpix_pixels": list(range(2000))},
    ],
)
def test_out_of_range_values_are_refused(api: Api, bad: dict[str, object]) -> None:
    api.seed()
    job = api.claim()
    body = _complete_body(job["job_id"], lease_token=job["lease_token"], **{**SOLVED, **bad})
    reply = api.client.post(
        "/api/complete_job.php",
        content=json.dumps(body, allow_nan=True),
        headers={**api.headers, "content-type": "application/json"},
    )
    assert reply.status_code == 400, reply.text


def test_the_workers_report_fits_the_request_schema() -> None:
    """What ``StackAstrometry.to_metadata`` sends is what complete_job accepts, field for field."""
    from crowdsky.astrometry import StackAstrometry
    from crowdsky.queue import PlateSolveReport
    from crowdsky.server.schemas.worker_api import CompleteJobRequest

    found = StackAstrometry(
        solved=True,
        message="solved",
        ra_deg=192.77,
        dec_deg=41.12,
        healpix=33810,
        healpix_pixels=(33298, 33810),
        corners_deg=((193.2, 40.6), (192.4, 40.6), (192.3, 41.6), (193.2, 41.6)),
        scale_arcsec=2.376,
        rotation_deg=181.3,
        rms_arcsec=0.5,
        n_matched=15,
    )
    metadata = found.to_metadata()
    assert set(metadata) == set(PlateSolveReport.__slots__)
    body = CompleteJobRequest.model_validate({"job_id": 1, "ucloud_path": "/x.fits", **metadata})
    report = body.plate_solve_report()
    assert report is not None and json.loads(report.wcs_healpix_pixels or "") == [33298, 33810]
    assert json.loads(report.wcs_corners or "")[2] == [192.3, 41.6]
