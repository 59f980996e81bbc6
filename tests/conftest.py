"""Fixtures shared by the whole suite.

Backend fixtures (``db_url`` over SQLite, PostgreSQL and MariaDB) live in
``tests/db_backends.py`` and are registered here; area-specific fixtures live in
each test folder's own ``conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REAL_FRAMES_DIR = PROJECT_ROOT.parent / "shared" / "data" / "seestar-s50-m94"

pytest_plugins = ["tests.db_backends", "tests.support.seaweedfs"]


@pytest.fixture(scope="session")
def real_frames_dir() -> Path:
    """The 32 real Seestar S50 frames of M 94 from ``../shared/data``; skips when absent."""
    if not REAL_FRAMES_DIR.is_dir():
        pytest.skip(
            f"real Seestar frames not found at {REAL_FRAMES_DIR} "
            "(they live in ../shared/data beside a project checkout)"
        )
    frames = sorted(REAL_FRAMES_DIR.glob("*.fit"))
    if len(frames) < 32:
        pytest.skip(f"expected 32 real frames in {REAL_FRAMES_DIR}, found {len(frames)}")
    return REAL_FRAMES_DIR


@pytest.fixture(scope="session")
def real_frames(real_frames_dir: Path) -> list[Path]:
    """Paths of the real frames, in DATE-OBS order (their names sort chronologically)."""
    return sorted(real_frames_dir.glob("*.fit"))
