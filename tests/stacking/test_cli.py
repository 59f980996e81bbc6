"""``crowdsky stack`` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from crowdsky.cli import app
from crowdsky.simulate import SimulatedSequence


def test_stack_json(sim_clean: SimulatedSequence, tmp_path: Path) -> None:
    out = tmp_path / "s.fits"
    args = [
        "stack",
        *map(str, sim_clean.paths[:4]),
        "-o",
        str(out),
        "--json",
        "--thumbnail",
        str(tmp_path / "t.png"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["n_aligned"] == 4 and data["n_frames_input"] == 4
    assert data["output_path"] == str(out) and out.exists()
    assert (tmp_path / "t.png").exists()


def test_stack_summary_and_errors(sim_clean: SimulatedSequence, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(
        app, ["stack", *map(str, sim_clean.paths[:3]), "-o", str(tmp_path / "s.fits")]
    )
    assert ok.exit_code == 0 and "3/3 frames stacked" in ok.stdout
    missing = runner.invoke(
        app, ["stack", str(tmp_path / "none.fit"), "-o", str(tmp_path / "x.fits")]
    )
    assert missing.exit_code == 2 and "not found" in missing.stderr


def test_export_cube_and_tiff(stacked_mixed, tmp_path: Path) -> None:
    from astropy.io import fits

    _, stack = stacked_mixed
    runner = CliRunner()
    cube = runner.invoke(app, ["export", str(stack), "-o", str(tmp_path / "c.fits")])
    assert cube.exit_code == 0 and "cube" in cube.stdout, cube.output
    assert fits.getdata(tmp_path / "c.fits").shape == (3, 960, 540)
    tiff = runner.invoke(app, ["export", str(stack), "-o", str(tmp_path / "c.tif")])
    assert tiff.exit_code == 0 and "tiff" in tiff.stdout, tiff.output
    assert (tmp_path / "c.tif").read_bytes()[:4] == b"II*\x00"
    bad = runner.invoke(app, ["export", str(tmp_path / "c.tif"), "-o", str(tmp_path / "x.fits")])
    assert bad.exit_code == 2 and "cannot read" in bad.output


def test_stack_of_one_frame_says_nothing_could_be_rejected(
    sim_clean: SimulatedSequence, tmp_path: Path
) -> None:
    from tests.support.cli_process import cli_env, run_cli

    out = tmp_path / "one.fits"
    done = run_cli(
        "stack", str(sim_clean.paths[0]), "-o", str(out), "--json",
        env=cli_env(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert done.code == 0, done.output
    assert json.loads(done.stdout)["n_aligned"] == 1, "stdout stays JSON"
    assert "a single frame was given, so nothing could be checked or rejected" in done.stderr
    several = run_cli(
        "stack", *map(str, sim_clean.paths[:3]), "-o", str(tmp_path / "three.fits"),
        env=cli_env(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert several.code == 0 and "nothing could be" not in several.output
