"""The web app in a real browser against real server and worker processes.

One module-scoped deployment; tests run in order and build on each other only through
what a user would see (each registers its own users).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits

from tests.web.conftest import (
    ADMIN,
    DESKTOP,
    PHONE,
    WebDeployment,
    check_accessibility,
    csrf,
    register,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
XSS = "<img src=x onerror=alert(1)>"
#: When the page scrolls sideways, the elements that reach beyond the viewport.
SIDEWAYS_OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth <= width) return [];
  return [...document.querySelectorAll('body *')]
    .filter((e) => e.getBoundingClientRect().right > width + 1)
    .map((e) => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className);
}"""
PAGES = ["/", "/login", "/register", "/upload", "/jobs", "/stacks", "/account", "/ops"]


def _context(browser: Any, web: WebDeployment, viewport: dict[str, int] = DESKTOP) -> Any:
    return browser.new_context(base_url=web.url, viewport=viewport, accept_downloads=True)


def _count(page: Any, selector: str, n: int, timeout_ms: float = 60_000) -> None:
    """Wait until ``selector`` matches exactly ``n`` elements (no page-side eval: the CSP
    forbids it, as it should)."""
    from playwright.sync_api import expect

    expect(page.locator(selector)).to_have_count(n, timeout=timeout_ms)


def test_real_night_upload_watch_find_download(
    browser: Any, web: WebDeployment, real_frames_dir: Path, screenshot_dir: Path, tmp_path: Path
) -> None:
    """register → log in → upload the folder → jobs finish live → map, gallery, table → FITS."""
    context = _context(browser, web)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    register(page, web.url, ADMIN)
    page.click("button:has-text('Log out')")
    page.goto("/login")
    page.fill("#login", f"{ADMIN}@example.org")
    page.fill("#password", "Orion-Nebula-42")
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(re.compile(r".*/stacks$"))
    page.goto("/upload")
    page.set_input_files("#pick-folder", str(real_frames_dir))
    _count(page, "#file-table tr[data-state=done]", 32, 300_000)
    page.click("#finalize")
    summary = page.wait_for_selector("#finalize-summary", timeout=60_000)
    assert "job" in summary.inner_text()
    page.screenshot(path=str(screenshot_dir / "upload-desktop.png"))
    page.click("a:has-text('Follow the jobs')")
    page.wait_for_url(re.compile(r".*/jobs$"))
    page.wait_for_selector("tr[data-job]")
    _count(page, "tr[data-status=completed]", 1, 600_000)
    page.screenshot(path=str(screenshot_dir / "jobs-desktop.png"), full_page=True)
    assert "used" in page.inner_text("tr[data-status=completed]")

    page.goto("/stacks")
    page.wait_for_selector("body[data-stacks-ready='1']")
    assert page.locator("#skymap circle.dot").count() >= 1
    assert page.locator("#gallery button.thumb img").count() >= 1
    assert "M 94" in page.inner_text("#stack-table tbody")
    page.locator("#gallery button.thumb").first.click()
    page.wait_for_selector("#lightbox[open]")
    assert "of 32" in page.inner_text("#lb-facts")
    page.screenshot(path=str(screenshot_dir / "stacks-lightbox-desktop.png"))
    page.click("#lb-close")
    with page.expect_download() as download_info:
        page.locator("#stack-table tbody a:has-text('FITS')").first.click()
    saved = tmp_path / "stack.fits"
    download_info.value.save_as(saved)
    with fits.open(saved) as hdul:
        hdul.verify("exception")
        assert "GREEN" in hdul
    with page.expect_download() as zip_info:
        page.click("#zip-button")
    zip_path = tmp_path / "stacks.zip"
    zip_info.value.save_as(zip_path)
    import zipfile

    with zipfile.ZipFile(zip_path) as archive:
        assert archive.testzip() is None
        assert archive.namelist()[0].endswith((".fits", ".fit"))
    assert not [e for e in errors if "Content Security Policy" in e], errors

    # every page, desktop and phone: screenshots and an axe-core check
    phone = browser.new_context(
        base_url=web.url, viewport=PHONE, storage_state=context.storage_state()
    )
    for ctx, size in ((context, "desktop"), (phone, "phone")):
        p = ctx.new_page()
        for path in PAGES:
            p.goto(path)
            p.wait_for_load_state("networkidle")
            name = path.strip("/") or "splash"
            if path == "/stacks":
                p.wait_for_selector("body[data-stacks-ready='1']")
            p.screenshot(path=str(screenshot_dir / f"{name}-{size}.png"), full_page=True)
            violations = check_accessibility(p)
            assert violations == [], (path, size, violations)
            # reflow (WCAG 1.4.10): the page never scrolls sideways, wide tables do inside
            assert p.evaluate(SIDEWAYS_OVERFLOW) == [], (path, size)
        p.close()
    phone.close()
    context.close()


def test_wrong_file_named_fit_is_an_error(browser: Any, web: WebDeployment, tmp_path: Path) -> None:
    """A text file called .fit is refused in the browser, with the reason in words."""
    fake = tmp_path / "notes.fit"
    fake.write_text("these are my observing notes, not a FITS file\n" * 100)
    context = _context(browser, web)
    page = context.new_page()
    register(page, web.url, "wrong-file-user")
    page.set_input_files("#pick-files", str(fake))
    cell = page.wait_for_selector("#file-table tr[data-state=error] td:last-child")
    assert "not a FITS file" in cell.inner_text()
    context.close()


def test_upload_resumes_after_reload(browser: Any, web: WebDeployment, tmp_path: Path) -> None:
    """Half the frames, a reload, all the frames: only the missing ones are sent."""
    from crowdsky.simulate import Observation, SequenceSpec, simulate_sequence

    with warnings.catch_warnings():  # the long OBJECT value truncates the card's comment
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        spec = SequenceSpec(
            n_frames=8, seed=7, shape=(270, 480), observation=Observation(object_name=XSS)
        )
        simulate_sequence(tmp_path / "night", spec)
    frames = sorted(str(p) for p in (tmp_path / "night").glob("*.fit"))
    context = _context(browser, web)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    register(page, web.url, "resume-user")
    page.set_input_files("#pick-files", frames[:4])
    _count(page, "#file-table tr[data-state=done]", 4)
    # the OBJECT header is hostile: shown as text, never run
    assert XSS in page.inner_text("#file-table")
    assert page.locator("#file-table img").count() == 0
    page.reload()
    note = page.wait_for_selector("#resume-note:not([hidden])")
    assert "4 files" in note.inner_text()
    page.set_input_files("#pick-files", frames)
    _count(page, "#file-table tr[data-state=skipped]", 4)
    _count(page, "#file-table tr[data-state=done]", 4)
    page.click("#finalize")
    page.wait_for_selector("#finalize-summary")
    page.goto("/jobs")
    page.wait_for_selector("tr[data-job]")
    assert XSS in page.inner_text("#jobs-root")
    assert page.locator("#jobs-root img").count() == 0
    assert dialogs == []
    # once the job has ended, the whole upload is deleted after a confirmation
    _count(page, "tr[data-status=completed], tr[data-status=failed]", 1, 300_000)
    page.click("button:has-text('Delete upload')")
    page.wait_for_selector("#confirm-dialog[open]")
    page.click("#confirm-yes")
    page.wait_for_selector("#jobs-root:has-text('No uploads yet')")
    assert page.evaluate("async () => (await fetch('/web/api/jobs')).json()")["jobs"] == []
    context.close()


def test_another_user_sees_none_of_it(browser: Any, web: WebDeployment) -> None:
    """A second user has no jobs or stacks, and cannot fetch the first user's stack."""
    context = _context(browser, web)
    page = context.new_page()
    register(page, web.url, "nosy-neighbour")
    jobs = page.evaluate("async () => (await fetch('/web/api/jobs')).json()")
    stacks = page.evaluate("async () => (await fetch('/web/api/stacks')).json()")
    assert jobs == {"sessions": [], "jobs": []}
    assert stacks["count"] == 0
    for stack_id in range(1, 4):
        status = page.evaluate(
            f"async () => (await fetch('/web/api/stacks/{stack_id}/fits')).status"
        )
        assert status == 404
    # a write without the CSRF token is refused even with a valid session
    status = page.evaluate(
        "async () => (await fetch('/web/api/jobs/1/delete', {method: 'POST'})).status"
    )
    assert status == 403
    token = csrf(page)
    status = page.evaluate(
        "async (t) => (await fetch('/web/api/jobs/1/delete',"
        " {method: 'POST', headers: {'X-CSRF-Token': t}})).status",
        token,
    )
    assert status == 404
    page.goto("/ops")
    assert "for administrators" in page.inner_text("main")
    context.close()


def test_jobs_page_shows_retry_and_failure_histories(browser: Any, web: WebDeployment) -> None:
    """A job waiting to retry and a failed one show every attempt's error, as text."""
    from datetime import timedelta

    from sqlalchemy import select

    from crowdsky.db import create_db_engine, make_session_factory
    from crowdsky.db.models import JobAttempt, StackingJob, UploadSession, User
    from crowdsky.db.types import utcnow

    context = _context(browser, web)
    page = context.new_page()
    register(page, web.url, "unlucky-user")
    engine = create_db_engine(f"sqlite:///{(web.server.data_dir / 'crowdsky.sqlite3').resolve()}")
    now = utcnow()
    try:
        with make_session_factory(engine)() as session, session.begin():
            user_id = session.execute(
                select(User.id).where(User.username == "unlucky-user")
            ).scalar_one()
            upload = UploadSession(
                user_id=user_id,
                session_token="unlucky" * 4,
                status="complete",
                storage_path="user_x/unlucky",
                created_at=now,
                last_activity_at=now,
            )
            session.add(upload)
            session.flush()
            waiting = StackingJob(
                user_id=user_id,
                upload_session_id=upload.id,
                chunk_key="20250327.05_A",
                object_name="NGC 4736",
                frame_count=20,
                status="retry",
                attempts=1,
                retry_count=1,
                error_message="too few stars",
                created_at=now,
                not_before=now + timedelta(days=1),  # the test's worker must not claim it
            )
            failed = StackingJob(
                user_id=user_id,
                upload_session_id=upload.id,
                chunk_key="20250327.06_B",
                object_name="M 64",
                frame_count=20,
                status="failed",
                attempts=3,
                retry_count=3,
                error_message="<b>third</b> failure",
                created_at=now,
            )
            session.add_all([waiting, failed])
            session.flush()
            session.add(
                JobAttempt(
                    stacking_job_id=waiting.id,
                    attempt=1,
                    outcome="failed",
                    error_message="too few stars",
                    ended_at=now,
                )
            )
            for n, message in enumerate(["lease expired", "disk full", "<b>third</b> failure"]):
                session.add(
                    JobAttempt(
                        stacking_job_id=failed.id,
                        attempt=n + 1,
                        outcome="failed",
                        error_message=message,
                        ended_at=now,
                    )
                )
    finally:
        engine.dispose()
    page.goto("/jobs")
    retry_row = page.wait_for_selector("tr[data-status=retry]")
    assert "too few stars" in retry_row.inner_text()
    assert "will retry" in retry_row.inner_text()
    failed_text = page.inner_text("tr[data-status=failed]")
    for message in ("lease expired", "disk full", "<b>third</b> failure"):
        assert message in failed_text
    assert page.locator("tr[data-status=failed] b").count() == 0
    context.close()


def test_lightbox_shows_the_plate_solution_as_text(browser: Any, web: WebDeployment) -> None:
    """Solved: centre, scale, rotation, residual; unsolved: the worker's reason, escaped."""
    from sqlalchemy import select

    from crowdsky.db import create_db_engine, make_session_factory
    from crowdsky.db.models import StackedFrame, StackingJob, UploadSession, User
    from crowdsky.db.types import utcnow

    context = _context(browser, web)
    page = context.new_page()
    register(page, web.url, "solver-user")
    engine = create_db_engine(f"sqlite:///{(web.server.data_dir / 'crowdsky.sqlite3').resolve()}")
    now = utcnow()
    solved = {
        "plate_solved": True,
        "wcs_ra_deg": 188.9876,
        "wcs_dec_deg": 41.1234,
        "wcs_scale_arcsec": 2.389,
        "wcs_rotation_deg": -12.5,
        "wcs_rms_arcsec": 0.42,
    }
    unsolved = {"plate_solved": False, "solve_message": f"no match: {XSS}"}
    try:
        with make_session_factory(engine)() as session, session.begin():
            user_id = session.execute(
                select(User.id).where(User.username == "solver-user")
            ).scalar_one()
            upload = UploadSession(
                user_id=user_id,
                session_token="solver" * 5,
                status="complete",
                storage_path="user_x/solver",
                created_at=now,
                last_activity_at=now,
            )
            session.add(upload)
            session.flush()
            for n, (name, facts) in enumerate((("Solved One", solved), ("Unsolved Two", unsolved))):
                job = StackingJob(
                    user_id=user_id,
                    upload_session_id=upload.id,
                    chunk_key=f"20250327.0{n}_S",
                    object_name=name,
                    frame_count=10,
                    status="completed",
                    attempts=1,
                    retry_count=0,
                    created_at=now,
                )
                session.add(job)
                session.flush()
                session.add(
                    StackedFrame(
                        stacking_job_id=job.id,
                        user_id=user_id,
                        object_name=name,
                        chunk_key=job.chunk_key,
                        filter_name="LP",
                        ucloud_path=f"/crowdsky/stacks/user_{user_id}/x/stack_{n}.fits",
                        n_frames_input=10,
                        n_frames_aligned=9,
                        date_obs_start=now,
                        ra_deg=188.9,
                        dec_deg=41.1,
                        created_at=now,
                        **facts,
                    )
                )
    finally:
        engine.dispose()
    page.goto("/stacks")
    page.wait_for_selector("body[data-stacks-ready='1']")
    for name, expected in (
        (
            "Solved One",
            # the position is the solution's; the mount's pointing beside it, 4.2′ off
            [
                "solved",
                "RA 188.9876°, Dec 41.1234° (plate solution)",
                "2.389″/px",
                "-12.50°",
                "0.42″",
                "Telescope pointing",
                "RA 188.900°, Dec 41.100° (4.2′ off)",
            ],
        ),
        ("Unsolved Two", [f"not solved: no match: {XSS}"]),
    ):
        page.locator(f"#gallery button.thumb:has-text('{name}')").click()
        page.wait_for_selector("#lightbox[open]")
        text = page.inner_text("#lb-facts")
        for part in expected:
            assert part in text, (name, part, text)
        assert page.locator("#lb-facts img").count() == 0
        assert "format=tiff" in (page.get_attribute("#lb-tiff", "href") or "")
        page.click("#lb-close")
    context.close()
