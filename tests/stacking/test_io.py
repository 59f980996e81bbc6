"""Output file layout and aggregated header; reading inputs."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from crowdsky import __version__
from crowdsky.simulate import SimulatedSequence
from crowdsky.stacking import InvalidInput, io


def test_layout_and_verification(stacked_mixed) -> None:
    result, path = stacked_mixed
    with fits.open(path) as hdul:
        hdul.verify("exception")
        assert [h.name for h in hdul] == [
            "PRIMARY",
            "RED",
            "GREEN",
            "BLUE",
            "FOOTPRINT",
            "STAR-TAB",
            "FRAMES",
        ]
        assert hdul[0].data is None
        for name in ("RED", "GREEN", "BLUE"):
            assert hdul[name].data.dtype == np.dtype(">f4")
            assert hdul[name].data.shape == (960, 540)
        assert (
            hdul["FOOTPRINT"].data.dtype.kind == "u"
            or hdul["FOOTPRINT"].header.get("BZERO") == 32768
        )
        assert int(hdul["FOOTPRINT"].data.max()) == result.n_aligned
        stars = hdul["STAR-TAB"].data
        for col in ("x", "y", "flux", "fwhm", "a", "b", "theta", "ellipticity", "flag"):
            assert col in stars.columns.names
        assert len(stars) == result.n_stars_detected > 50
        frames = hdul["FRAMES"].data
        assert len(frames) == result.n_frames_input
        assert frames["ACCEPTED"].sum() == result.n_aligned
        assert all(r for r, a in zip(frames["REASON"], frames["ACCEPTED"], strict=True) if not a)
        assert frames["TRANSFORM"].shape == (15, 6)


def test_aggregated_header(sim_mixed: SimulatedSequence, stacked_mixed) -> None:
    result, path = stacked_mixed
    hdr = fits.getheader(path)
    used = [sim_mixed.truth[f.index] for f in result.frames if f.accepted]
    assert hdr["EXPTIME"] == pytest.approx(10.0 * len(used)) == hdr["EXPOSURE"]
    assert hdr["NCOMBINE"] == len(used) and hdr["NINPUT"] == 15
    start = min(t.date_obs for t in used)
    end = max(t.date_obs for t in used) + timedelta(seconds=10)
    assert "T" in hdr["DATE-OBS"] and hdr["DATE-OBS"].startswith(
        start.strftime("%Y-%m-%dT%H:%M:%S")
    )
    assert hdr["DATE-END"].startswith(end.strftime("%Y-%m-%dT%H:%M:%S"))
    assert hdr["MJD-END"] > hdr["MJD-OBS"]
    assert "BAYERPAT" not in hdr
    assert "SITELAT" not in hdr and "SITELONG" not in hdr
    assert hdr["RA"] == pytest.approx(sim_mixed.ra_deg, abs=1e-4)
    assert hdr["DEC"] == pytest.approx(sim_mixed.dec_deg, abs=1e-4)
    for key in ("INSTRUME", "TELESCOP", "FILTER", "OBJECT", "GAIN"):
        assert key in hdr
    assert hdr["SWCREATE"] == f"crowdsky {__version__}"
    assert hdr["STACKMET"] == "mean"
    assert hdr["HIERARCH CROWDSKY SIGMA CLIP"] == 3.0
    assert hdr["HIERARCH CROWDSKY MEMORY LIMIT BYTES"] == result.params["memory_limit_bytes"]


def test_result_to_dict_is_json_safe(stacked_mixed) -> None:
    import json

    result, _ = stacked_mixed
    data = json.loads(json.dumps(result.to_dict()))
    assert data["n_aligned"] == result.n_aligned
    assert data["date_obs_start"].endswith("+00:00")
    assert len(data["frames"]) == 15
    assert data["frames"][8]["accepted"] is False and data["frames"][8]["reason"]
    assert data["frames"][0]["filename"].endswith(".fit")


def test_fast_reader_matches_astropy(sim_mixed: SimulatedSequence) -> None:
    frame = io.read_frame(sim_mixed.paths[0])
    with fits.open(sim_mixed.paths[0]) as hdul:
        np.testing.assert_array_equal(frame.data, hdul[0].data)
    assert frame.kind == "bayer" and frame.bayer_pattern == "GRBG"
    assert frame.date_obs is not None and frame.date_obs.tzinfo is not None


def test_reads_mono_and_rgb_cubes(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).random((3, 100, 80)).astype(np.float32)
    fits.PrimaryHDU(rgb).writeto(tmp_path / "cube.fits")
    fits.PrimaryHDU(np.moveaxis(rgb, 0, -1)).writeto(tmp_path / "interleaved.fits")
    fits.PrimaryHDU(rgb[0]).writeto(tmp_path / "mono.fits")
    assert io.read_frame(tmp_path / "cube.fits").data.shape == (100, 80, 3)
    assert io.read_frame(tmp_path / "interleaved.fits").kind == "rgb"
    assert io.read_frame(tmp_path / "mono.fits").kind == "mono"
    (tmp_path / "bad.fits").write_bytes(b"\0" * 5000)
    with pytest.raises(InvalidInput, match=r"bad\.fits"):
        io.read_frame(tmp_path / "bad.fits")


def test_card_header_parses_like_astropy() -> None:
    cards = [
        "SIMPLE  =                    T / conforms",
        "BITPIX  =                   16",
        "OBJECT  = 'M 94    '           / name",
        "NOTE    = 'it''s here'         / quoted quote",
        "EXPTIME =                  10. / seconds",
        "GAIN    =                   80",
        "BIG     =               1.5D+3",
        "FLAG    =                    F",
        "END",
    ]
    raw = "".join(c.ljust(80) for c in cards).ljust(2880).encode("ascii")
    hdr = io.CardHeader(raw)
    reference = fits.Header.fromstring(raw.decode("ascii"))
    for key in ("SIMPLE", "BITPIX", "OBJECT", "NOTE", "EXPTIME", "GAIN", "FLAG"):
        assert hdr.get(key) == reference[key], key
    assert hdr.get("BIG") == 1500.0
    assert hdr.comment("OBJECT") == "name"
    assert "GAIN" in hdr and "MISSING" not in hdr
    assert hdr.to_astropy()["NOTE"] == "it's here"


def test_output_mode_follows_the_umask(sim_clean: SimulatedSequence, tmp_path: Path) -> None:
    """The stack is created like any file of the process: 0666 minus the umask (not
    mkstemp's 0600, which a web server or another user cannot read)."""
    from crowdsky.stacking import stack_files

    old = os.umask(0o022)
    try:
        out = tmp_path / "public.fits"
        stack_files(sim_clean.paths[:5], out)
        assert stat.S_IMODE(out.stat().st_mode) == 0o644
        os.umask(0o027)
        assert stat.S_IMODE(io.create_temporary(tmp_path / "x.fits").stat().st_mode) == 0o640
    finally:
        os.umask(old)
    assert not list(tmp_path.glob(".public.fits.*"))  # the temporary was renamed


def test_nan_exactly_where_the_footprint_is_zero(stacked_mixed) -> None:
    _, path = stacked_mixed
    with fits.open(path) as hdul:
        footprint = hdul["FOOTPRINT"].data
        uncovered = footprint == 0
        assert uncovered.sum() < uncovered.size
        for name in ("RED", "GREEN", "BLUE"):
            np.testing.assert_array_equal(np.isnan(hdul[name].data), uncovered, err_msg=name)
