"""The post-processing job's normalisation of an uploaded stack."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from crowdsky.worker.errors import StackingFailed
from crowdsky.worker.postprocess import normalise_stack
from tests.server.test_client_api import write_seestar_stack


def test_a_seestar_stack_becomes_our_product(tmp_path: Path) -> None:
    source = write_seestar_stack(tmp_path / "CrowdSky_38_M81.fit")
    out = tmp_path / "out.fits"
    result = normalise_stack([source], out)
    assert (result.n_frames_input, result.n_aligned, result.total_exptime) == (38, 38, 380.0)
    assert result.n_stars_detected == 3
    assert (result.ra_deg, result.dec_deg) == (148.97, 69.68)
    with fits.open(out) as hdul:
        assert [h.name for h in hdul] == [
            "PRIMARY", "RED", "GREEN", "BLUE", "FOOTPRINT", "STAR-TAB", "FRAMES"
        ]  # fmt: skip
        primary = hdul[0].header
        assert hdul[0].data is None and hdul["RED"].data.dtype.newbyteorder("=") == np.float32
        assert hdul["GREEN"].data.shape == (64, 96)
        assert primary["NIMAGES"] == 38 and primary["EXPTIME"] == 380.0
        assert primary["OB-START"] == primary["DATE-OBS"] == "2026-02-27T22:30:05.000"
        assert primary["OB-END"] == primary["DATE-END"] == "2026-02-27T22:36:25.000"
        assert primary["OBSTOTAL"] == 38
        assert "SITELAT" not in primary and "SITELONG" not in primary
        assert primary["EQMODE"] == 1 and len(hdul["STAR-TAB"].data) == 3
        original = fits.getdata(source).astype(np.float32)
        np.testing.assert_array_equal(hdul["BLUE"].data, original[2])


def test_bad_inputs_fail_the_job_with_a_reason(tmp_path: Path) -> None:
    cube = tmp_path / "cube.fit"
    fits.PrimaryHDU(np.zeros((4, 5, 6), np.uint16)).writeto(cube)
    with pytest.raises(StackingFailed, match="neither RGB nor mono"):
        normalise_stack([cube], tmp_path / "o.fits")
    junk = tmp_path / "junk.fit"
    junk.write_bytes(b"SIMPLE  = nonsense")
    with pytest.raises(StackingFailed):
        normalise_stack([junk], tmp_path / "o.fits")
    with pytest.raises(StackingFailed, match="one stack"):
        normalise_stack([cube, cube], tmp_path / "o.fits")
