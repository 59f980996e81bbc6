"""Plate solving of a star list: astrometry.net finds the field, we verify and refine.

:class:`PlateSolver` keeps the ``astrometry`` package's solver (index files
memory-mapped) and the reference catalogue loaded, so a long-lived worker pays their
set-up once, and solves the stars the engine already measured. Every solution is
verified against the catalogue and refitted; one that fails is refused, so no wrong
WCS is ever written, and the result says why there is none.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crowdsky.astrometry import catalogue, colours, errors, wcs

__all__ = [
    "DEFAULT_INDEX_DIRS",
    "PlateSolver",
    "Solution",
    "SolveAttempt",
    "find_index_files",
]

DEFAULT_INDEX_DIRS = (Path("/usr/share/astrometry"), Path("/usr/local/share/astrometry"))
"""Where Debian's ``astrometry-data-*`` packages (and local builds) put index files."""
INDEX_GLOB = "index-*.fits"
CATALOGUE_PREFERENCE = ("index-tycho2-07", "index-tycho2-08", "index-tycho2-09")
"""Index files used as the photometric/cross-match catalogue, densest first."""
MAX_SOLVE_STARS = 60
HINT_RADIUS_DEG = 1.0
DEFAULT_SCALE_RANGE_ARCSEC = (2.2, 2.6)
"""Seestar S50: 2.9 µm pixels at 250 mm focal length give 2.39″/px."""
MATCH_RADIUS_PX = 4.0
FINAL_MATCH_RADIUS_ARCSEC = 3.0
MIN_MATCHED_STARS = 8
MAX_RMS_ARCSEC = 2.0
EDGE_MARGIN_PX = 2.0
LOGODDS_STOP = 21.0
MAX_FIELD_QUADS = 1000
"""Field quads astrometry.net may try per run: the time budget of a field that does not
solve (unbounded, a random star list took 2.2 s CPU, 10–19 s at load 15, hinted + blind;
with 1000, 0.17 s CPU). The real M 94 stack, and simulated sky fields, solve blind
within 300."""
PAIR_BLOCK = 512
"""Detected stars per block of the brute-force pairing (512 × 2000 float64 = 8 MB)."""


@dataclass(frozen=True, slots=True)
class SolveAttempt:
    """One astrometry.net run: how it was asked and what came back."""

    strategy: str
    seconds: float
    found: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Solution:
    """Outcome of :meth:`PlateSolver.solve`.

    Attributes
    ----------
    solved : bool
        True when a verified WCS was found.
    reason : str
        Why there is no solution ('' when solved), or a one-line summary.
    wcs : TanSip or None
        The refined WCS.
    strategy : str
        ``'hinted'`` or ``'blind'`` (the run that found the field).
    index_name : str
        Index file that matched.
    n_matched : int
        Detected stars paired with a catalogue star in the final fit.
    rms_arcsec : float
        RMS distance catalogue → WCS(detected), arcsec.
    star_cat_index : ndarray
        For each input star, the row in :attr:`catalogue_stars` it matched, or −1.
    match_dist_arcsec : ndarray
        Per input star, the distance to its catalogue star (NaN when unmatched).
    catalogue_stars : CatalogueStars or None
        Catalogue stars of the field.
    catalogue_name : str
        Index file the catalogue came from.
    catalogue_index_id : int or None
        Its INDEXID.
    seconds : float
        Wall time of the whole solve.
    attempts : tuple of SolveAttempt
    """

    solved: bool
    reason: str
    wcs: wcs.TanSip | None = None
    strategy: str = ""
    index_name: str = ""
    n_matched: int = 0
    rms_arcsec: float = float("nan")
    star_cat_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    match_dist_arcsec: np.ndarray = field(default_factory=lambda: np.zeros(0))
    catalogue_stars: catalogue.CatalogueStars | None = None
    catalogue_name: str = ""
    catalogue_index_id: int | None = None
    seconds: float = 0.0
    attempts: tuple[SolveAttempt, ...] = ()


def find_index_files(dirs: Sequence[Path] = DEFAULT_INDEX_DIRS) -> list[Path]:
    """Astrometry.net index files in ``dirs`` (sorted; duplicates by name skipped)."""
    found: dict[str, Path] = {}
    for folder in dirs:
        if Path(folder).is_dir():
            for path in sorted(Path(folder).glob(INDEX_GLOB)):
                found.setdefault(path.name, path)
    return sorted(found.values(), key=lambda p: p.name)


class PlateSolver:
    """A plate solver with its index files and reference catalogue kept loaded.

    Parameters
    ----------
    index_files : sequence of Path
        astrometry.net index files (Debian: ``/usr/share/astrometry/index-*.fits``).
    catalogue_file : Path or None
        Index file whose stars and magnitudes are the cross-match catalogue; by
        default the densest Tycho-2 one present.
    colour_files : sequence of Path or None
        Stellarium star catalogue files (B−V) for the colour calibration; None or
        empty: stacks are not colour calibrated.

    Raises
    ------
    SolverUnavailable
        The ``astrometry`` package is not installed, or no index file was given.
    """

    def __init__(
        self,
        index_files: Sequence[Path],
        catalogue_file: Path | None = None,
        colour_files: Sequence[Path] | None = None,
    ) -> None:
        paths = [Path(p) for p in index_files]
        if not paths:
            raise errors.SolverUnavailable(
                "no astrometry.net index files found (install astrometry-data-tycho2-07/08/09)"
            )
        try:
            import astrometry
        except ImportError as exc:
            raise errors.SolverUnavailable(
                "the astrometry package is not installed (pip install astrometry)"
            ) from exc
        self._astrometry = astrometry
        self.index_files = paths
        self._solver: Any = None
        self._lock = threading.Lock()
        # astrometry.net's solver is not safe for concurrent solves in one process (two
        # worker threads solving at once crashed the process); a solve takes milliseconds
        self._solve_lock = threading.Lock()
        if catalogue_file is None:
            catalogue_file = _preferred_catalogue(paths)
        self.catalogue = catalogue.IndexCatalogue(catalogue_file)
        self.colours = colours.ColourCatalogue(colour_files) if colour_files else None

    @classmethod
    def from_directories(
        cls,
        dirs: Sequence[Path] = DEFAULT_INDEX_DIRS,
        colour_dirs: Sequence[Path] = colours.DEFAULT_COLOUR_DIRS,
    ) -> PlateSolver:
        """A solver on every index file found in ``dirs``, with Stellarium's colours
        when ``colour_dirs`` hold them."""
        return cls(find_index_files(dirs), colour_files=colours.find_colour_catalogue(colour_dirs))

    def describe(self) -> str:
        """Index files (and colour catalogue) in use, for logs."""
        names = ", ".join(p.name for p in self.index_files)
        return names + ("; colours: " + self.colours.name if self.colours is not None else "")

    def load(self) -> None:
        """Open the index files and read the catalogue now (else the first solve does)."""
        with self._lock:
            if self._solver is None:
                self._solver = self._astrometry.Solver(self.index_files)
        self.catalogue.load()

    def warm_up(self) -> None:
        """Load, import the photometry's sep, read the catalogue's pages and colours.

        A fresh worker calls this in the background when it claims its first job, so
        that the solve after the stack finds everything in memory.
        """
        self.load()
        import sep  # noqa: F401  (imported here so the first solve does not)

        self.catalogue.cone(0.0, 90.0, 0.1)  # one pass over the mapped star table
        if self.colours is not None:
            self.colours.load()

    def close(self) -> None:
        """Release the index files."""
        with self._lock:
            if self._solver is not None:
                self._solver.close()
                self._solver = None

    def solve(
        self,
        xy: np.ndarray,
        shape: tuple[int, int],
        *,
        hint_deg: tuple[float, float] | None = None,
        scale_range_arcsec: tuple[float, float] = DEFAULT_SCALE_RANGE_ARCSEC,
        blind_fallback: bool = True,
    ) -> Solution:
        """Solve a star list.

        Parameters
        ----------
        xy : ndarray
            (N, 2) 0-based pixel positions (x = column, y = row), brightest first.
        shape : tuple of int
            Image (rows, columns).
        hint_deg : tuple of float or None
            (RA, Dec) of the expected centre (the mount's header position).
        scale_range_arcsec : tuple of float
            Lower and upper pixel scale, arcsec per pixel.
        blind_fallback : bool
            Try again without a position hint when the hinted run finds nothing.

        Returns
        -------
        Solution
            ``solved`` False with a reason when no verified solution was found.

        Notes
        -----
        1. astrometry.net runs on the brightest :data:`MAX_SOLVE_STARS` stars, both
           parities (Seestar images are mirrored), the header position as a hint
           (:data:`HINT_RADIUS_DEG`: S50 pointing errors reach ~15′) and the scale
           range; if that finds nothing, again blind. Each run tries at most
           :data:`MAX_FIELD_QUADS` field quads: the time budget of a field not there.
        2. Every catalogue star in the field is projected with that solution and
           paired with the nearest detected star (mutual nearest neighbours within
           :data:`MATCH_RADIUS_PX`); a TAN-SIP WCS is fitted to all pairs, the pairs
           found again within :data:`FINAL_MATCH_RADIUS_ARCSEC` and fitted once more.
        3. A solution with fewer than :data:`MIN_MATCHED_STARS` pairs, an RMS above
           :data:`MAX_RMS_ARCSEC` or a scale outside the range is refused.
        """
        started = time.perf_counter()
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        n = len(xy)
        if n < MIN_MATCHED_STARS:
            reason = f"only {n} stars detected (need {MIN_MATCHED_STARS}): clouds, or no stars"
            return _unsolved(n, reason, started)
        self.load()
        attempts: list[SolveAttempt] = []
        rejected: list[str] = []
        for strategy, hint in _plans(hint_deg, blind_fallback):
            t0 = time.perf_counter()
            match = self._run_engine(xy[:MAX_SOLVE_STARS], hint, scale_range_arcsec)
            seconds = time.perf_counter() - t0
            if match is None:
                attempts.append(SolveAttempt(strategy, seconds, False, "no match"))
                continue
            attempts.append(SolveAttempt(strategy, seconds, True, f"{Path(match.index_path).name}"))
            outcome = self._verify(xy, shape, match, scale_range_arcsec)
            if isinstance(outcome, str):
                rejected.append(f"{strategy}: {outcome}")
                continue
            return _with(
                outcome,
                strategy=strategy,
                seconds=time.perf_counter() - started,
                attempts=tuple(attempts),
            )
        if rejected:
            reason = "solution refused (" + "; ".join(rejected) + ")"
        else:
            tried = " then ".join(a.strategy for a in attempts)
            reason = (
                f"no match in the {self._catalogue_label()} index for {n} stars "
                f"({tried}, {scale_range_arcsec[0]:g}-{scale_range_arcsec[1]:g}″/px): "
                "another field, too few stars or no sky"
            )
        return _unsolved(n, reason, started, tuple(attempts))

    # -- steps ---------------------------------------------------------------------

    def _catalogue_label(self) -> str:
        return "Tycho-2" if all("tycho2" in p.name for p in self.index_files) else "astrometry.net"

    def _run_engine(
        self,
        xy: np.ndarray,
        hint: tuple[float, float] | None,
        scale_range: tuple[float, float],
    ) -> Any:
        am = self._astrometry
        params = am.SolutionParameters(
            sip_order=0,
            tune_up_logodds_threshold=None,
            output_logodds_threshold=LOGODDS_STOP,
            maximum_quads=MAX_FIELD_QUADS,
            parity=am.Parity.BOTH,
            logodds_callback=lambda _logodds: am.Action.STOP,  # the first good match
        )
        position = None if hint is None else am.PositionHint(hint[0], hint[1], HINT_RADIUS_DEG)
        with self._solve_lock:
            solution = self._solver.solve(
                stars=xy.tolist(),
                size_hint=am.SizeHint(*scale_range),
                position_hint=position,
                solution_parameters=params,
            )
        return solution.best_match() if solution.has_match() else None

    def _verify(
        self,
        xy: np.ndarray,
        shape: tuple[int, int],
        match: Any,
        scale_range: tuple[float, float],
    ) -> Solution | str:
        fields = {k: v[0] for k, v in match.wcs_fields.items()}
        initial = wcs.TanSip(
            (float(fields["CRVAL1"]), float(fields["CRVAL2"])),
            (float(fields["CRPIX1"]) - 1.0, float(fields["CRPIX2"]) - 1.0),
            np.array(
                [
                    [float(fields["CD1_1"]), float(fields["CD1_2"])],
                    [float(fields["CD2_1"]), float(fields["CD2_2"])],
                ]
            ),
            np.zeros((3, 3)),
            np.zeros((3, 3)),
            np.zeros((3, 3)),
            np.zeros((3, 3)),
            shape,
        )
        rows, cols = shape
        centre = initial.pixel_to_world(np.array([(cols - 1) / 2]), np.array([(rows - 1) / 2]))
        radius = 0.5 * math.hypot(rows, cols) * initial.scale_arcsec / 3600.0 * 1.05
        stars = self.catalogue.cone(float(centre[0][0]), float(centre[1][0]), radius)
        fit = initial
        cat_idx = np.full(len(xy), -1, dtype=np.int64)
        for radius_px in (MATCH_RADIUS_PX, FINAL_MATCH_RADIUS_ARCSEC / initial.scale_arcsec):
            cat_idx = _pair(fit, xy, stars, shape, radius_px)
            used = cat_idx >= 0
            if used.sum() < MIN_MATCHED_STARS:
                return (
                    f"{int(used.sum())} of {len(stars)} catalogue stars in the field matched "
                    f"(need {MIN_MATCHED_STARS})"
                )
            fit = wcs.fit_tan_sip(
                xy[used, 0],
                xy[used, 1],
                stars.ra_deg[cat_idx[used]],
                stars.dec_deg[cat_idx[used]],
                shape,
                fit.crval,
            )
        used = cat_idx >= 0
        dist = np.full(len(xy), np.nan)
        ra, dec = fit.pixel_to_world(xy[used, 0], xy[used, 1])
        dist[used] = _separation_arcsec(
            ra, dec, stars.ra_deg[cat_idx[used]], stars.dec_deg[cat_idx[used]]
        )
        rms = float(np.sqrt(np.mean(dist[used] ** 2)))
        scale = fit.scale_arcsec
        if rms > MAX_RMS_ARCSEC:
            return f"RMS {rms:.2f}″ of {int(used.sum())} matched stars exceeds {MAX_RMS_ARCSEC}″"
        if not scale_range[0] <= scale <= scale_range[1]:
            return f"scale {scale:.3f}″/px outside {scale_range[0]:g}-{scale_range[1]:g}″/px"
        return Solution(
            True,
            f"{int(used.sum())} stars matched, RMS {rms:.2f}″",
            wcs=fit,
            index_name=Path(match.index_path).name,
            n_matched=int(used.sum()),
            rms_arcsec=rms,
            star_cat_index=cat_idx,
            match_dist_arcsec=dist,
            catalogue_stars=stars,
            catalogue_name=self.catalogue.name,
            catalogue_index_id=self.catalogue.index_id,
        )


def _plans(
    hint_deg: tuple[float, float] | None, blind_fallback: bool
) -> list[tuple[str, tuple[float, float] | None]]:
    """The runs to try in turn: hinted by the header position when there is one, then
    blind unless ``blind_fallback`` is off (blind anyway without a hint)."""
    plans: list[tuple[str, tuple[float, float] | None]] = []
    if hint_deg is not None and all(math.isfinite(v) for v in hint_deg):
        plans.append(("hinted", (float(hint_deg[0]) % 360.0, float(hint_deg[1]))))
    if blind_fallback or not plans:
        plans.append(("blind", None))
    return plans


def _unsolved(
    n_stars: int, reason: str, started: float, attempts: tuple[SolveAttempt, ...] = ()
) -> Solution:
    """No solution for ``n_stars`` stars, and why."""
    return Solution(
        False,
        reason,
        star_cat_index=np.full(n_stars, -1, dtype=np.int64),
        match_dist_arcsec=np.full(n_stars, np.nan),
        seconds=time.perf_counter() - started,
        attempts=attempts,
    )


def _with(solution: Solution, **changes: Any) -> Solution:
    from dataclasses import replace

    return replace(solution, **changes)


def _preferred_catalogue(paths: Sequence[Path]) -> Path:
    for prefix in CATALOGUE_PREFERENCE:
        for path in paths:
            if path.name.startswith(prefix):
                return path
    return paths[0]


def _pair(
    fit: wcs.TanSip,
    xy: np.ndarray,
    stars: catalogue.CatalogueStars,
    shape: tuple[int, int],
    radius_px: float,
) -> np.ndarray:
    """Mutual nearest neighbours detected ↔ projected catalogue within ``radius_px``."""
    out = np.full(len(xy), -1, dtype=np.int64)
    if len(stars) == 0 or len(xy) == 0:
        return out
    cx, cy = fit.world_to_pixel(stars.ra_deg, stars.dec_deg)
    rows, cols = shape
    inside = (
        np.isfinite(cx)
        & np.isfinite(cy)
        & (cx >= -EDGE_MARGIN_PX)
        & (cx <= cols - 1 + EDGE_MARGIN_PX)
        & (cy >= -EDGE_MARGIN_PX)
        & (cy <= rows - 1 + EDGE_MARGIN_PX)
    )
    cat_rows = np.flatnonzero(inside)
    if cat_rows.size == 0:
        return out
    near_cat, d_det, near_det = _nearest_both_ways(xy, np.column_stack([cx, cy])[cat_rows])
    mutual = (d_det <= radius_px) & (near_det[near_cat] == np.arange(len(xy)))
    out[mutual] = cat_rows[near_cat[mutual]]
    return out


def _nearest_both_ways(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest ``b`` of each ``a`` (index, distance) and nearest ``a`` of each ``b``.

    Brute force in blocks of ``PAIR_BLOCK`` rows: a field has hundreds of stars, and
    importing scipy.spatial for a k-d tree cost a fresh worker 0.6–0.9 s.
    """
    near_b = np.empty(len(a), dtype=np.int64)
    dist_a = np.empty(len(a))
    best_b = np.full(len(b), np.inf)
    near_a = np.zeros(len(b), dtype=np.int64)
    for start in range(0, len(a), PAIR_BLOCK):
        block = a[start : start + PAIR_BLOCK]
        d2 = (block[:, None, 0] - b[None, :, 0]) ** 2 + (block[:, None, 1] - b[None, :, 1]) ** 2
        j = np.argmin(d2, axis=1)
        near_b[start : start + len(block)] = j
        dist_a[start : start + len(block)] = np.sqrt(d2[np.arange(len(block)), j])
        i = np.argmin(d2, axis=0)
        closer = d2[i, np.arange(len(b))] < best_b
        best_b[closer] = d2[i[closer], np.flatnonzero(closer)]
        near_a[closer] = i[closer] + start
    return near_b, dist_a, near_a


def _separation_arcsec(
    ra1: np.ndarray, dec1: np.ndarray, ra2: np.ndarray, dec2: np.ndarray
) -> np.ndarray:
    r1, d1, r2, d2 = (np.radians(a) for a in (ra1, dec1, ra2, dec2))
    h = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1)))) * 3600.0
