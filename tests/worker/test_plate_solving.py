"""The worker's plate-solving step inside whole jobs (fake API, real solver and files)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from crowdsky.stacking.detect import STAR_DTYPE
from crowdsky.stacking.io import write_stack
from crowdsky.storage.result_store import LocalResultStore
from crowdsky.worker.api_client import ApiClient
from crowdsky.worker.job_processor import JobProcessor, ProcessorOptions
from crowdsky.worker.plate_solving import StackPlateSolver, star_json_remote_path
from tests.astrometry.conftest import catalogue_file, index_files  # noqa: F401 (fixtures)
from tests.support.sky_frames import S50_SHAPE, sky_stars, true_wcs
from tests.worker.fakes import API, KEY, FakeStackResult, FakeWorkerApi, no_wait_retry

STACK = "/crowdsky/stacks/user_1/M42/stack_20250115.78_83.6_+22.0_{}.fits"
M94 = (192.77, 41.12, 181.3)


class SkyStacker:
    """Writes a stack whose STAR-TAB holds catalogue stars seen through a known WCS."""

    def __init__(self, xy: np.ndarray) -> None:
        self.xy = xy

    def __call__(
        self,
        fits_paths: Sequence[Path],
        output_path: Path,
        method: str = "mean",
        sigma_clip: float = 3.0,
        *,
        progress: Callable[[float, str], None] | None = None,
    ) -> FakeStackResult:
        rows, cols = S50_SHAPE
        rng = np.random.default_rng(0)
        image = rng.normal(1000.0, 4.0, (rows, cols, 3)).astype(np.float32)
        stars = np.zeros(len(self.xy), dtype=STAR_DTYPE)
        stars["x"], stars["y"] = self.xy[:, 0], self.xy[:, 1]
        stars["flux"] = np.linspace(1e5, 1e3, len(self.xy))
        header = fits.Header()
        header["RA"], header["DEC"] = M94[0] + 0.2, M94[1] - 0.1  # ~15′ pointing error
        header["EXPTIME"], header["NCOMBINE"] = 40.0, 4
        footprint = np.full((rows, cols), 4, np.uint16)
        write_stack(Path(output_path), header, image, footprint, stars, {"INDEX": np.arange(4)})
        n = len(fits_paths)
        return FakeStackResult(Path(output_path), n, n, total_exptime=40.0)


def _processor(
    tmp_path: Path, fake: FakeWorkerApi, stacker: object, solver: object
) -> JobProcessor:
    api = ApiClient(API, KEY, "w-test", transport=fake.transport, retry=no_wait_retry(2))
    return JobProcessor(
        api,
        LocalResultStore(tmp_path / "results"),
        ProcessorOptions(work_dir=tmp_path / "work", worker_id="w-test", heartbeat_interval=5.0),
        stacker=stacker,  # type: ignore[arg-type]
        thumbnailer=lambda fits_path, out: out.write_bytes(b"png") and out,  # type: ignore[arg-type,func-returns-value]
        plate_solver=solver,  # type: ignore[arg-type]
    )


@pytest.mark.slow
def test_a_job_is_solved_and_reported(
    tmp_path: Path,
    index_files: list[Path],  # noqa: F811
    catalogue_file: Path,  # noqa: F811
) -> None:
    truth = true_wcs(*M94)
    xy = sky_stars(catalogue_file, truth, margin_px=-3.0).xy
    fake = FakeWorkerApi()
    fake.add_job(42, n_files=4)
    solver = StackPlateSolver([index_files[0].parent])
    proc = _processor(tmp_path, fake, SkyStacker(xy), solver)
    job = proc.api.get_next_job()
    assert job is not None
    outcome = proc.process_job(job)
    assert outcome.status == "completed", outcome.message
    done = fake.jobs[42].completed
    assert done is not None
    assert done["plate_solved"] is True, done["solve_message"]
    assert done["wcs_ra_deg"] == pytest.approx(M94[0], abs=1e-3)
    assert done["wcs_dec_deg"] == pytest.approx(M94[1], abs=1e-3)
    assert done["wcs_scale_arcsec"] == pytest.approx(2.38, rel=0.005)
    assert done["wcs_rms_arcsec"] < 1.0 and done["wcs_healpix"] > 0
    assert done["ra_deg"] == pytest.approx(83.633)  # the spec's fields are untouched
    assert outcome.timings.solve_s > 0
    published = tmp_path / "results" / STACK.format(42).lstrip("/")
    with fits.open(published) as hdul:
        assert hdul[0].header["PLTSOLVD"] is True
        assert done["file_size_bytes"] == published.stat().st_size
    stars_json = tmp_path / "results" / star_json_remote_path(STACK.format(42)).lstrip("/")
    body = json.loads(stars_json.read_text())
    assert len(body["stars"]) == len(xy) and body["width"] == S50_SHAPE[1]
    assert sum(1 for s in body["stars"] if s["cat_id"]) >= 8


def test_a_worker_without_a_solver_still_delivers_and_says_why(tmp_path: Path) -> None:
    xy = np.random.default_rng(1).uniform(0, 1000, (40, 2))
    fake = FakeWorkerApi()
    fake.add_job(7, n_files=3)
    solver = StackPlateSolver([tmp_path / "no-index-files-here"])
    assert solver.available()[0] is False
    proc = _processor(tmp_path, fake, SkyStacker(xy), solver)
    job = proc.api.get_next_job()
    assert job is not None
    outcome = proc.process_job(job)
    assert outcome.status == "completed", outcome.message
    done = fake.jobs[7].completed
    assert done is not None
    assert done["plate_solved"] is False
    assert "no astrometry.net index files" in done["solve_message"]
    assert "wcs_ra_deg" not in done
    published = tmp_path / "results" / STACK.format(7).lstrip("/")
    with fits.open(published) as hdul:
        assert hdul[0].header["PLTSOLVD"] is False
        assert "index files" in hdul[0].header["PLTMSG"]
    assert not (tmp_path / "results" / star_json_remote_path(STACK.format(7)).lstrip("/")).exists()


def test_star_json_sits_beside_the_stack() -> None:
    assert star_json_remote_path("/a/b/stack_K_7.fits") == "/a/b/stack_K_7_stars.json"
