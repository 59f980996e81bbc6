"""Errors of the plate solver.

::

    AstrometryError
     ├── SolverUnavailable   the solver library or its index files are missing
     └── CatalogueError      an index file cannot be read as a star catalogue
"""

from __future__ import annotations

__all__ = ["AstrometryError", "CatalogueError", "SolverUnavailable"]


class AstrometryError(Exception):
    """Plate solving failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class SolverUnavailable(AstrometryError):
    """No plate solver: the astrometry package or its index files are not installed."""


class CatalogueError(AstrometryError):
    """An astrometry.net index file cannot be read as a star catalogue."""
