"""`crowdsky demo` end to end: real server and worker processes, the upload API, stacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from astropy.io import fits

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_demo_runs_a_small_night_and_produces_valid_stacks(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CROWDSKY_", "WORKER_"))}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "crowdsky",
            "demo",
            "--night",
            "small",
            "--data-dir",
            str(tmp_path / "demo"),
            "--timeout",
            "600",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "stacks" in out and "rejected frames (why)" in out
    assert "transparency" in out  # the cloudy frame is rejected with its reason
    stacks = sorted((tmp_path / "demo").glob("run-*/results/crowdsky/stacks/user_*/*/*.fits"))
    thumbs = sorted((tmp_path / "demo").glob("run-*/results/crowdsky/stacks/user_*/*/*.png"))
    assert len(stacks) == 4 and len(thumbs) == 4  # 2 targets x 2 chunks
    for path in stacks:
        assert str(path) in out
        with fits.open(path) as hdul:
            hdul.verify("exception")
            assert [h.name for h in hdul][:4] == ["PRIMARY", "RED", "GREEN", "BLUE"]
            assert hdul[0].header["NCOMBINE"] >= 4
            assert "BAYERPAT" not in hdul[0].header
    # everything was shut down: no raw files left on the server, no stray processes
    assert not list((tmp_path / "demo").glob("run-*/server/uploads/**/*.fit"))


def test_demo_reports_a_missing_frames_folder(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "crowdsky",
            "demo",
            "--frames",
            str(tmp_path / "nope"),
            "--data-dir",
            str(tmp_path / "demo"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "is not a folder" in result.stdout + result.stderr
