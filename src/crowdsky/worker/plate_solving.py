"""The worker's plate-solving step: every finished stack is solved before it is published.

:class:`StackPlateSolver` keeps one :class:`crowdsky.astrometry.PlateSolver` for the
process (index files memory-mapped, the Tycho-2 catalogue in memory), so a
long-lived worker pays the set-up once; :meth:`~StackPlateSolver.prepare` starts that
in the background (index files mapped, sep imported, the catalogue's pages read) while
the first job downloads and stacks. The step never fails a job: a
stack that does not solve, or a worker without a solver (package or index files
missing), is still delivered, with ``PLTSOLVD = F`` and the reason in its header and
in the ``complete_job`` report (``plate_solved``, ``solve_message``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from crowdsky.storage.result_paths import STAR_JSON_SUFFIX
from crowdsky.storage.result_store import ResultStore

logger = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PlateSolveStep:
    """What the step did to one stack.

    Attributes
    ----------
    solved : bool
        A verified WCS was written.
    message : str
        The solver's summary, or why the stack is not solved.
    metadata : dict
        Optional ``complete_job`` fields (``plate_solved``, ``wcs_*``, ``phot_*``).
    star_json : Path or None
        The star JSON written beside the stack (published with it).
    seconds : float
        Wall time of the step.
    """

    solved: bool
    message: str
    metadata: dict[str, Any] = field(default_factory=dict)
    star_json: Path | None = None
    seconds: float = 0.0


def star_json_remote_path(fits_remote_path: str) -> str:
    """``…/stack_K_7.fits`` → ``…/stack_K_7_stars.json`` (beside the stack)."""
    stem, dot, _ = fits_remote_path.rpartition(".")
    return f"{stem if dot else fits_remote_path}{STAR_JSON_SUFFIX}"


class StackPlateSolver:
    """Solves each stack with one solver kept for the process (thread-safe).

    Parameters
    ----------
    index_dirs : sequence of Path or None
        Where the astrometry.net index files are; default Debian's
        ``/usr/share/astrometry`` (and ``/usr/local/share/astrometry``).
    """

    def __init__(self, index_dirs: Sequence[Path] | None = None) -> None:
        self.index_dirs = tuple(index_dirs) if index_dirs is not None else None
        self._lock = threading.Lock()
        self._solver: Any = None
        self._unavailable: str | None = None
        self._loader: threading.Thread | None = None

    def prepare(self) -> None:
        """Load the solver in a background thread (once); solving waits for it."""
        with self._lock:
            if self._loader is None and self._solver is None and self._unavailable is None:
                self._loader = threading.Thread(
                    target=self._load, name="crowdsky-plate-solver-load", daemon=True
                )
                self._loader.start()

    def available(self) -> tuple[bool, str]:
        """Whether a solver is installed, and what it uses or why there is none."""
        solver = self._get()
        if solver is None:
            return False, self._unavailable or "no plate solver"
        return True, solver.describe()

    def solve(self, stack_path: Path, log: Any = logger) -> PlateSolveStep:
        """Solve one written stack in place; never raises for a solving problem."""
        from crowdsky.astrometry import AstrometryError, mark_unsolved, solve_stack_file

        started = time.perf_counter()
        solver = self._get()
        if solver is None:
            reason = f"not plate solved: {self._unavailable}"
            return self._unsolved(stack_path, reason, started, log, mark_unsolved)
        try:
            found = solve_stack_file(stack_path, solver)
        except AstrometryError as exc:
            return self._unsolved(
                stack_path, f"not plate solved: {exc}", started, log, mark_unsolved
            )
        seconds = time.perf_counter() - started
        log.info(
            "plate_solve_done",
            solved=found.solved,
            message=found.message,
            ra_deg=found.ra_deg,
            dec_deg=found.dec_deg,
            rms_arcsec=found.rms_arcsec,
            n_matched=found.n_matched,
            solve_seconds=round(found.solve_seconds, 3),
            seconds=round(seconds, 3),
        )
        return PlateSolveStep(
            found.solved, found.message, found.to_metadata(), found.star_json, seconds
        )

    def publish(self, store: ResultStore, step: PlateSolveStep, fits_remote_path: str) -> int:
        """Upload the star JSON beside the published stack; bytes written (0 if none)."""
        if step.star_json is None or not step.star_json.is_file():
            return 0
        return int(store.upload_file(step.star_json, star_json_remote_path(fits_remote_path)))

    # -- internals ---------------------------------------------------------------------

    def _load(self) -> None:
        from crowdsky.astrometry import DEFAULT_INDEX_DIRS, PlateSolver, SolverUnavailable

        try:
            solver = PlateSolver.from_directories(self.index_dirs or DEFAULT_INDEX_DIRS)
            solver.warm_up()
        except SolverUnavailable as exc:
            with self._lock:
                self._unavailable = str(exc)
            logger.warning("plate_solver_unavailable", reason=str(exc))
            return
        except Exception as exc:  # a damaged index file must not stop the worker
            with self._lock:
                self._unavailable = f"plate solver failed to load: {type(exc).__name__}: {exc}"
            logger.error("plate_solver_unavailable", reason=self._unavailable)
            return
        with self._lock:
            self._solver = solver
        logger.info("plate_solver_loaded", index_files=solver.describe())

    def _get(self) -> Any:
        self.prepare()
        loader = self._loader
        if loader is not None:
            loader.join()
        return self._solver

    @staticmethod
    def _unsolved(
        stack_path: Path, reason: str, started: float, log: Any, mark: Any
    ) -> PlateSolveStep:
        from crowdsky.astrometry import AstrometryError

        try:
            mark(stack_path, reason)
        except AstrometryError as exc:
            log.warning("plate_solve_mark_failed", error=str(exc))
        log.warning("plate_solve_skipped", reason=reason)
        metadata = {"plate_solved": False, "solve_message": reason[:255]}
        return PlateSolveStep(False, reason, metadata, None, time.perf_counter() - started)
