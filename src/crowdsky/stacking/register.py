"""Star matching, transform estimation and validation: deterministic, numpy only.

Our own matcher, because astroalign's RANSAC is unseeded, pulls in scikit-image and
silently returns an identity on hot-pixel fields. :func:`match_stars` scores every
hypothesis (no random sampling) and refines the best; :func:`validate` decides whether
the fit may be used, and a frame that fails is rejected with a reason, never stacked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from crowdsky.stacking.result import RejectReason

__all__ = ["IDENTITY", "Registration", "estimate_transform", "match_stars", "validate"]

BRIGHT_STARS = 40
"""Stars of each list used for hypotheses."""
TRIANGLE_NEIGHBOURS = 5
INVARIANT_TOLERANCE = 0.015
VOTE_CELL_PX = 2.0
MAX_HYPOTHESES = 1000
SCORE_CHUNK = 128
REFINE_ITERATIONS = 6
IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
"""The 2×3 identity transform: the reference onto itself (read-only, shared by threads)."""
IDENTITY.setflags(write=False)


@dataclass(frozen=True, slots=True)
class Registration:
    """A fitted transform with its evidence.

    Attributes
    ----------
    matrix : ndarray
        2×3 float64, frame pixel (x, y) → reference pixel (x, y).
    src_index, ref_index : ndarray
        Indices of matched stars in the frame's and the reference's list.
    residual_px : float
        RMS distance of matched stars after the fit.
    """

    matrix: np.ndarray
    src_index: np.ndarray
    ref_index: np.ndarray
    residual_px: float

    @property
    def n_matched(self) -> int:
        """Number of matched star pairs."""
        return int(self.src_index.size)

    @property
    def scale(self) -> float:
        """Mean linear scale of the transform."""
        return math.sqrt(abs(float(np.linalg.det(self.matrix[:, :2]))))

    @property
    def rotation_deg(self) -> float:
        """Rotation angle in degrees (counter-clockwise in x, y)."""
        m = self.matrix
        return math.degrees(math.atan2(m[1, 0] - m[0, 1], m[0, 0] + m[1, 1]))


def apply(matrix: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Apply a 2×3 affine matrix to (N, 2) points."""
    out: np.ndarray = xy @ matrix[:, :2].T + matrix[:, 2]
    return out


def estimate_transform(src: np.ndarray, dst: np.ndarray, model: str = "similarity") -> np.ndarray:
    """Least-squares 2×3 transform mapping ``src`` (N, 2) onto ``dst`` (N, 2).

    ``'similarity'``: rotation, uniform scale, translation (4 parameters, N ≥ 2);
    ``'affine'``: 6 parameters (N ≥ 3). Coordinates are centred first for conditioning.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    cs, cd = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - cs, dst - cd
    if model == "affine" and len(src) >= 3:
        lin, *_ = np.linalg.lstsq(s, d, rcond=None)
        a = lin.T
    else:
        denom = float((s**2).sum()) or 1.0
        p = float((s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]).sum()) / denom
        q = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / denom
        a = np.array([[p, -q], [q, p]])
    t = cd - a @ cs
    return np.hstack([a, t[:, None]])


def _nearest(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d2 = ((pred[:, None, :] - ref[None, :, :]) ** 2).sum(axis=2)
    j = np.argmin(d2, axis=1)
    return j, np.sqrt(d2[np.arange(len(pred)), j])


def _mutual_matches(
    pred: np.ndarray, ref: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    d2 = ((pred[:, None, :] - ref[None, :, :]) ** 2).sum(axis=2)
    j = np.argmin(d2, axis=1)
    i_back = np.argmin(d2, axis=0)
    i = np.arange(len(pred))
    ok = (i_back[j] == i) & (d2[i, j] <= radius * radius)
    return i[ok], j[ok]


def _translation_hypotheses(src: np.ndarray, ref: np.ndarray, n_best: int = 3) -> list[np.ndarray]:
    offsets = (ref[None, :, :] - src[:, None, :]).reshape(-1, 2)
    cells = np.floor(offsets / VOTE_CELL_PX).astype(np.int64)
    keys = cells[:, 0] * 1_000_003 + cells[:, 1]
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    hypotheses = []
    for k in np.argsort(-counts, kind="stable")[:n_best]:
        centre = np.median(offsets[inverse == k], axis=0)
        near = np.linalg.norm(offsets - centre, axis=1) < 1.5 * VOTE_CELL_PX
        shift = np.median(offsets[near], axis=0)
        hypotheses.append(np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]]))
    return hypotheses


def _triangles(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Triangles (vertex indices ordered by opposite side length) and their invariants."""
    n = len(xy)
    if n < 3:
        return np.zeros((0, 3), np.int64), np.zeros((0, 2))
    d = np.linalg.norm(xy[:, None, :] - xy[None, :, :], axis=2)
    k = min(TRIANGLE_NEIGHBOURS, n - 1)
    nn = np.argsort(d, axis=1, kind="stable")[:, 1 : k + 1]
    tri = []
    for i in range(n):
        for a in range(k):
            for b in range(a + 1, k):
                tri.append(sorted((i, int(nn[i, a]), int(nn[i, b]))))
    tris = np.unique(np.array(tri, dtype=np.int64), axis=0)
    p = xy[tris]  # (T, 3, 2)
    # side opposite vertex v connects the other two
    sides = np.stack(
        [
            np.linalg.norm(p[:, 1] - p[:, 2], axis=1),
            np.linalg.norm(p[:, 0] - p[:, 2], axis=1),
            np.linalg.norm(p[:, 0] - p[:, 1], axis=1),
        ],
        axis=1,
    )
    order = np.argsort(sides, axis=1, kind="stable")
    sides = np.take_along_axis(sides, order, axis=1)
    tris = np.take_along_axis(tris, order, axis=1)
    good = sides[:, 0] > 3.0
    inv = np.stack([sides[:, 1] / sides[:, 2], sides[:, 0] / sides[:, 2]], axis=1)
    return tris[good], inv[good]


def _triangle_hypotheses(src: np.ndarray, ref: np.ndarray) -> list[np.ndarray]:
    ts, inv_s = _triangles(src)
    tr, inv_r = _triangles(ref)
    if len(ts) == 0 or len(tr) == 0:
        return []
    dist = np.abs(inv_s[:, None, :] - inv_r[None, :, :]).max(axis=2)
    si, ri = np.nonzero(dist < INVARIANT_TOLERANCE)
    if si.size > MAX_HYPOTHESES:
        keep = np.argsort(dist[si, ri], kind="stable")[:MAX_HYPOTHESES]
        si, ri = si[keep], ri[keep]
    hypotheses = []
    for a, b in zip(si, ri, strict=True):
        ps, pr = src[ts[a]], ref[tr[b]]
        m = estimate_transform(ps, pr, "similarity")
        if np.abs(apply(m, ps) - pr).max() < 1.5:
            hypotheses.append(m)
    return hypotheses


def match_stars(
    src_xy: np.ndarray,
    ref_xy: np.ndarray,
    *,
    radius_px: float = 3.0,
    model: str = "similarity",
    min_matches: int = 3,
    prior: np.ndarray | None = None,
) -> Registration | None:
    """Find the transform mapping a frame's stars onto the reference's.

    Parameters
    ----------
    src_xy, ref_xy : ndarray
        (N, 2) star positions (x = column, y = row), brightest first, native pixels.
    radius_px : float
        Match radius in native pixels.
    model : {'similarity', 'affine'}
        Model of the final fit.
    min_matches : int
        Below this many inliers the best hypothesis is not even refined.
    prior : ndarray or None
        A likely 2×3 transform (e.g. the previous frame's), tried first: with slow
        field rotation it usually wins at once and the triangle search is skipped.

    Returns
    -------
    Registration or None
        None when no hypothesis reaches ``min_matches`` matched stars.

    Notes
    -----
    1. Hypotheses: (a) translation votes, every offset between the brightest stars of
       the two lists, quantised, the densest cells kept (alt-az drift within a chunk is
       mostly translation, and votes work with very few stars); (b) triangle
       invariants, triangles of each bright star with pairs of its nearest neighbours
       described by side ratios, close invariants giving a similarity from their
       vertex pairs (any rotation, as between nights).
    2. Scoring: every hypothesis is applied to the bright stars and scored by the
       stars landing within ``radius_px`` of a reference star.
    3. Refinement: mutual nearest neighbours within ``radius_px``, least-squares fit
       (``model``), 3σ outliers removed, repeated until the match set is stable.
    """
    src_xy = np.asarray(src_xy, dtype=np.float64).reshape(-1, 2)
    ref_xy = np.asarray(ref_xy, dtype=np.float64).reshape(-1, 2)
    if len(src_xy) < 3 or len(ref_xy) < 3:
        return None
    bs, br = src_xy[:BRIGHT_STARS], ref_xy[:BRIGHT_STARS]
    easy = max(min_matches, int(0.5 * min(len(bs), len(br))))
    candidates = [_translation_hypotheses(bs, br)]
    if prior is not None:
        candidates[0].insert(0, np.asarray(prior, dtype=np.float64))
    best_matrix, best_hits = None, -1
    for stage, hypotheses in enumerate(candidates):
        for start in range(0, len(hypotheses), SCORE_CHUNK):
            mats = np.stack(hypotheses[start : start + SCORE_CHUNK])  # (H, 2, 3)
            pred = np.einsum("hij,nj->hni", mats[:, :, :2], bs) + mats[:, None, :, 2]
            d2 = ((pred[:, :, None, :] - br[None, None, :, :]) ** 2).sum(axis=3)
            hits = (d2.min(axis=2) <= radius_px * radius_px).sum(axis=1)
            k = int(np.argmax(hits))  # first maximum: deterministic
            if hits[k] > best_hits:
                best_matrix, best_hits = mats[k], int(hits[k])
        if stage == 0 and best_hits < easy:
            candidates.append(_triangle_hypotheses(bs, br))
    if best_matrix is None or best_hits < min_matches:
        return None
    return _refine(best_matrix, src_xy, ref_xy, radius_px, model, min_matches)


def _refine(
    matrix: np.ndarray,
    src: np.ndarray,
    ref: np.ndarray,
    radius: float,
    model: str,
    min_matches: int,
) -> Registration | None:
    si = ri = np.zeros(0, dtype=np.int64)
    previous: tuple[int, ...] = ()
    for _ in range(REFINE_ITERATIONS):
        si, ri = _mutual_matches(apply(matrix, src), ref, radius)
        if si.size < max(min_matches, 2):
            return None
        matrix = estimate_transform(src[si], ref[ri], model)
        resid = np.linalg.norm(apply(matrix, src[si]) - ref[ri], axis=1)
        rms = float(np.sqrt(np.mean(resid**2)))
        keep = resid <= max(3.0 * rms, 0.3)
        if not keep.all() and keep.sum() >= max(min_matches, 2):
            si, ri = si[keep], ri[keep]
            matrix = estimate_transform(src[si], ref[ri], model)
        key = tuple(si.tolist())
        if key == previous:
            break
        previous = key
    resid = np.linalg.norm(apply(matrix, src[si]) - ref[ri], axis=1)
    return Registration(matrix, si, ri, float(np.sqrt(np.mean(resid**2))))


def validate(
    reg: Registration | None,
    *,
    n_src: int,
    n_ref: int,
    min_matched: int,
    min_fraction: float,
    max_residual_px: float,
    max_scale_deviation: float,
    max_rotation_deg: float,
) -> tuple[RejectReason, str] | None:
    """Check a registration; return (code, reason) when it must not be used, else None."""
    if reg is None:
        return (
            RejectReason.NO_MATCH,
            "no consistent star match with the reference (another field, or no stars)",
        )
    needed = max(min_matched, math.ceil(min_fraction * min(n_src, n_ref)))
    if reg.n_matched < needed:
        return (
            RejectReason.TOO_FEW_MATCHES,
            f"only {reg.n_matched} stars matched the reference (need {needed})",
        )
    if reg.residual_px > max_residual_px:
        return (
            RejectReason.LARGE_RESIDUAL,
            f"registration residual {reg.residual_px:.2f} px exceeds {max_residual_px:.2f} px",
        )
    if abs(reg.scale - 1.0) > max_scale_deviation:
        return (
            RejectReason.BAD_SCALE,
            f"registration scale {reg.scale:.4f} differs from 1 by more than "
            f"{max_scale_deviation:g}",
        )
    if abs(reg.rotation_deg) > max_rotation_deg:
        return (
            RejectReason.BAD_ROTATION,
            f"field rotation {reg.rotation_deg:.1f} deg exceeds {max_rotation_deg:g} deg",
        )
    return None
