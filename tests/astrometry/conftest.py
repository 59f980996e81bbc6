"""Fixtures of the plate-solver tests: one loaded solver per session.

Without the ``astrometry`` package or the Tycho-2 index files the tests skip with a
message, unless ``CROWDSKY_REQUIRE_ALL_BACKENDS=1`` (``.ci/run``), where they fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crowdsky.astrometry import PlateSolver, SolverUnavailable, find_index_files
from tests.db_backends import require_all_backends

REQUIRED_INDEX = "index-tycho2-07"


def _unavailable(message: str) -> None:
    message += (
        " (apt-get install astrometry.net astrometry-data-tycho2-07-littleendian "
        "astrometry-data-tycho2-08-littleendian astrometry-data-tycho2-09-littleendian)"
    )
    if require_all_backends():
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def index_files() -> list[Path]:
    """The installed astrometry.net index files (Tycho-2 07 at least)."""
    found = find_index_files()
    if not any(p.name.startswith(REQUIRED_INDEX) for p in found):
        _unavailable(f"no {REQUIRED_INDEX} index file installed")
    return found


@pytest.fixture(scope="session")
def catalogue_file(index_files: list[Path]) -> Path:
    """The index file used as the reference catalogue."""
    return next(p for p in index_files if p.name.startswith(REQUIRED_INDEX))


@pytest.fixture(scope="session")
def plate_solver(index_files: list[Path]) -> PlateSolver:
    """A loaded solver shared by the session (as a long-lived worker keeps it)."""
    try:
        solver = PlateSolver(index_files)
    except SolverUnavailable as exc:
        _unavailable(str(exc))
        raise
    solver.load()
    return solver


@pytest.fixture(scope="session")
def colour_files() -> list[Path]:
    """Stellarium's star catalogue files (B−V), from Debian's stellarium-data."""
    from crowdsky.astrometry.colours import find_colour_catalogue

    files = find_colour_catalogue()
    if not files:
        message = "Stellarium's star catalogues are not installed (apt-get install stellarium-data)"
        if require_all_backends():
            pytest.fail(message)
        pytest.skip(message)
    return files
