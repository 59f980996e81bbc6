"""Plate solving and photometric calibration of stacks (astrometry.net index files).

Public API::

    solver = PlateSolver.from_directories()     # index files of /usr/share/astrometry
    result = solve_stack_file(path, solver)     # WCS, sky columns, zero points, star JSON

Imports only the standard library, the scientific stack, the ``astrometry`` package
(when a solver is built) and the pure HEALPix function of ``crowdsky.healpix``;
never the server or the worker.
"""

from __future__ import annotations

from crowdsky.astrometry.errors import AstrometryError, CatalogueError, SolverUnavailable
from crowdsky.astrometry.solver import (
    DEFAULT_INDEX_DIRS,
    PlateSolver,
    Solution,
    find_index_files,
)
from crowdsky.astrometry.stack_file import (
    StackAstrometry,
    mark_unsolved,
    solve_stack_file,
    star_json_path,
)

__all__ = [
    "DEFAULT_INDEX_DIRS",
    "AstrometryError",
    "CatalogueError",
    "PlateSolver",
    "Solution",
    "SolverUnavailable",
    "StackAstrometry",
    "find_index_files",
    "mark_unsolved",
    "solve_stack_file",
    "star_json_path",
]
