"""The vendored browser libraries are the ones CHECKSUMS names, with their licences."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from crowdsky.web import STATIC_DIR

ROOT = Path(__file__).resolve().parents[2]


def test_vendored_files_match_their_checksums() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fetch-browser-assets"), "--verify"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    names = (STATIC_DIR / "vendor" / "CHECKSUMS").read_text()
    for library in ("d3", "d3-geo-projection", "axe-core"):
        assert f"{library}.LICENSE.txt" in names
