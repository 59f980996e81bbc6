"""Star FWHM and bright-star SNR of stacks, measured the same way on the same stars.

Usage (from the project root)::

    .venv/bin/python bench/measure_sharpness.py ANCHOR.fits OTHER.fits [...] [--json]

Each file is a CrowdSky stack (the GREEN extension) or a 3-plane FITS cube (Siril's
result, plane 1); only the green channel is measured (the densest Bayer colour: two
sites per cell), with a 5 % border cut on every side. The same stars are measured in
every file:

1. Stars are detected in the first file (sep, 5 σ, at least 5 pixels), isolated
   (no brighter neighbour within 12 px), unflagged and unsaturated (peak below 80 % of
   the brightest peak).
2. Every other file's stars are matched to them with CrowdSky's registration code
   (the grids differ by their reference frames); only stars found in every file are
   kept.
3. Per star and file: **FWHM** from a least-squares fit of an elliptical Gaussian
   plus a constant on a 17 × 17 box (FWHM = 2.3548 √(σx σy), its geometric mean), and
   the aperture flux in a circle of radius 2 × the anchor's median FWHM after the local
   background (median of an annulus) is removed.
4. **Noise of that aperture** is measured, not modelled: the same aperture placed on
   4,000 star-free positions (no source of the 3 σ segmentation map within the
   aperture's radius + 3 px), sums after the same annulus background, robust σ
   (1.4826 × MAD). With 400 positions (the first version) the figure moved by
   ±7 % with the random positions alone (sd over 8 seeds; ±10 % on a ratio of two
   files), more than the differences it was used to rank; with 4,000, ±1.5 % (±2 %
   on a ratio). Resampled stacks have correlated noise, so σ_pixel × √area would
   flatter the smoother image; the scatter of empty apertures does not.
5. **Bright-star SNR** = median of flux / aperture noise over the 10 brightest common
   stars (by the anchor's flux).

Prints a table (median FWHM over the common stars, bright-star SNR, stars, ratios to
the anchor) or, with ``--json``, one JSON object per file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BORDER_FRACTION = 0.05
BOX = 8  # half-size of the fitting box, px
N_BRIGHT = 10
N_EMPTY = 4000
ISOLATION_PX = 12.0
SEED = 17


def green_plane(path: Path) -> np.ndarray:
    """The green plane, border cut, float64 (NaN kept)."""
    from astropy.io import fits

    with fits.open(path) as hdul:
        names = {h.name for h in hdul}
        if "GREEN" in names:
            data = np.asarray(hdul["GREEN"].data, dtype=np.float64)
        else:
            cube = np.asarray(hdul[0].data, dtype=np.float64)
            data = cube[1] if cube.ndim == 3 else cube
    rows, cols = data.shape
    dr, dc = int(BORDER_FRACTION * rows), int(BORDER_FRACTION * cols)
    return np.ascontiguousarray(data[dr : rows - dr, dc : cols - dc])


def detect(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(stars structured array, source mask, global background RMS) of one image."""
    import sep

    sep.set_extract_pixstack(2_000_000)
    filled = np.where(np.isfinite(image), image, np.nanmedian(image)).astype(np.float32)
    bkg = sep.Background(filled, bw=64, bh=64)
    res = filled - bkg.back()
    objs = sep.extract(res, 5.0, err=bkg.globalrms, minarea=5)
    _, seg = sep.extract(res, 3.0, err=bkg.globalrms, segmentation_map=True)
    return objs, seg > 0, float(bkg.globalrms)


def isolated(objs: np.ndarray) -> np.ndarray:
    xy = np.column_stack([objs["x"], objs["y"]])
    keep = (objs["flag"] == 0) & (objs["peak"] < 0.8 * objs["peak"].max())
    for i in np.flatnonzero(keep):
        d = np.hypot(*(xy - xy[i]).T)
        near = (d < ISOLATION_PX) & (d > 0) & (objs["flux"] > 0.2 * objs["flux"][i])
        if near.any():
            keep[i] = False
    return keep


def gaussian_fwhm(image: np.ndarray, x: float, y: float) -> float:
    """FWHM (px) of an elliptical Gaussian + constant fitted around (x, y)."""
    from scipy.optimize import least_squares

    xi, yi = round(x), round(y)
    r0, r1, c0, c1 = yi - BOX, yi + BOX + 1, xi - BOX, xi + BOX + 1
    if r0 < 0 or c0 < 0 or r1 > image.shape[0] or c1 > image.shape[1]:
        return float("nan")
    box = image[r0:r1, c0:c1]
    if not np.isfinite(box).all():
        return float("nan")
    yy, xx = np.mgrid[r0:r1, c0:c1]
    base = float(np.median(box))
    amp = float(box.max() - base)

    def residual(p: np.ndarray) -> np.ndarray:
        a, cx, cy, sx, sy, b = p
        model = a * np.exp(-0.5 * (((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2)) + b
        return (model - box).ravel()

    fit = least_squares(
        residual,
        [amp, x, y, 1.3, 1.3, base],
        bounds=([0, x - 3, y - 3, 0.3, 0.3, -np.inf], [np.inf, x + 3, y + 3, 8, 8, np.inf]),
    )
    if not fit.success:
        return float("nan")
    sx, sy = abs(fit.x[3]), abs(fit.x[4])
    return float(2.3548 * np.sqrt(sx * sy))


def aperture_sums(image: np.ndarray, x: np.ndarray, y: np.ndarray, radius: float) -> np.ndarray:
    """Aperture sums minus the annulus median × area (NaN where not fully covered)."""
    out = np.full(len(x), np.nan)
    r_out = int(np.ceil(radius * 2.5)) + 1
    for k, (cx, cy) in enumerate(zip(x, y, strict=True)):
        xi, yi = round(cx), round(cy)
        r0, r1, c0, c1 = yi - r_out, yi + r_out + 1, xi - r_out, xi + r_out + 1
        if r0 < 0 or c0 < 0 or r1 > image.shape[0] or c1 > image.shape[1]:
            continue
        box = image[r0:r1, c0:c1]
        if not np.isfinite(box).all():
            continue
        yy, xx = np.mgrid[r0:r1, c0:c1]
        d = np.hypot(xx - cx, yy - cy)
        inner = d <= radius
        annulus = (d >= 1.5 * radius) & (d <= 2.5 * radius)
        out[k] = box[inner].sum() - np.median(box[annulus]) * inner.sum()
    return out


def empty_aperture_noise(image: np.ndarray, sources: np.ndarray, radius: float) -> float:
    """Robust σ of aperture sums at star-free positions."""
    import cv2

    grow = int(np.ceil(radius)) + 3
    kernel = np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)
    blocked = cv2.dilate(sources.astype(np.uint8), kernel) > 0
    blocked |= ~np.isfinite(image)
    margin = int(np.ceil(radius * 2.5)) + 2
    blocked[:margin], blocked[-margin:], blocked[:, :margin], blocked[:, -margin:] = (
        True,
        True,
        True,
        True,
    )
    ys, xs = np.nonzero(~blocked)
    rng = np.random.default_rng(SEED)
    pick = rng.choice(len(xs), size=min(N_EMPTY, len(xs)), replace=False)
    sums = aperture_sums(image, xs[pick].astype(float), ys[pick].astype(float), radius)
    sums = sums[np.isfinite(sums)]
    return float(1.4826 * np.median(np.abs(sums - np.median(sums))))


def measure(paths: list[Path]) -> list[dict]:
    sys.path.insert(0, str(ROOT / "src"))
    from crowdsky.stacking import register

    images = [green_plane(p) for p in paths]
    found = [detect(img) for img in images]
    anchor, _, _ = found[0]
    keep = isolated(anchor)
    ax, ay = anchor["x"][keep], anchor["y"][keep]
    aflux = anchor["flux"][keep]
    positions = [np.column_stack([ax, ay])]
    common = np.ones(len(ax), dtype=bool)
    for objs, _, _ in found[1:]:
        xy = np.column_stack([objs["x"], objs["y"]])
        reg = register.match_stars(positions[0], xy, radius_px=2.0)
        if reg is None:
            raise SystemExit("could not match the star lists")
        mapped = np.full((len(ax), 2), np.nan)
        mapped[reg.src_index] = xy[reg.ref_index]
        positions.append(mapped)
        common &= np.isfinite(mapped[:, 0])
    idx = np.flatnonzero(common)
    fwhm = [
        np.array([gaussian_fwhm(img, *pos[i]) for i in idx])
        for img, pos in zip(images, positions, strict=True)
    ]
    radius = 2.0 * float(np.nanmedian(fwhm[0]))
    bright = idx[np.argsort(-aflux[idx])[:N_BRIGHT]]
    rows = []
    for path, img, pos, fw, (objs, sources, _) in zip(
        paths, images, positions, fwhm, found, strict=True
    ):
        ok = np.isfinite(fw)
        noise = empty_aperture_noise(img, sources, radius)
        flux = aperture_sums(img, pos[bright, 0], pos[bright, 1], radius)
        rows.append(
            {
                "file": str(path),
                "stars_5sigma": len(objs),
                "common_stars": int(ok.sum()),
                "median_fwhm_px": float(np.median(fw[ok])),
                "aperture_radius_px": radius,
                "aperture_noise": noise,
                "bright_star_snr": float(np.nanmedian(flux / noise)),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = measure(args.files)
    if args.json:
        print(json.dumps(rows))
        return
    a = rows[0]
    print(f"{'file':50s} stars common FWHM px  ratio   SNR    ratio")
    for r in rows:
        print(
            f"{Path(r['file']).name[:50]:50s} {r['stars_5sigma']:5d} {r['common_stars']:6d} "
            f"{r['median_fwhm_px']:7.3f} {r['median_fwhm_px'] / a['median_fwhm_px']:7.3f} "
            f"{r['bright_star_snr']:7.0f} {r['bright_star_snr'] / a['bright_star_snr']:6.2f}"
        )


if __name__ == "__main__":
    main()
