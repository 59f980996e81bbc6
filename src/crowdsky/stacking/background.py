"""Sky background model and colour balance for previews; the science planes never change.

Light-pollution and moonlight gradients are smooth over a Seestar's 1.3° × 0.7° field,
so a degree-2 polynomial per colour, fitted to clipped cell medians, follows them
without eating extended targets (:func:`fit_background`). Colours are then balanced
on the objects' light (:func:`neutralise`), or with a catalogue calibration's factors.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_background", "neutralise", "remove_gradient"]

CELLS_SHORT_SIDE = 24
DEGREE = 2
CLIP_SIGMA = 2.5
CLIP_ITERATIONS = 5
BRIGHT_SIGMA = 10.0
SATURATION_FRACTION = 0.95
BALANCE_RANGE = (0.25, 4.0)


def _design(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.column_stack([x**i * y**j for i in range(DEGREE + 1) for j in range(DEGREE + 1 - i)])


def fit_background(image: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Smooth sky model of an (H, W, C) float image, same shape.

    The image is cut into cells (:data:`CELLS_SHORT_SIDE` per short side) and each
    cell's median taken per colour; cells holding objects (a galaxy, a nebula, bright
    stars) stand above the sky and are rejected by iterative clipping of the cell
    medians against the model; a 2-D polynomial of degree :data:`DEGREE` in x and y is
    fitted per colour to the remaining cells (least squares) and evaluated over the
    whole image. A quadratic over the whole frame cannot imitate an extended target.

    Parameters
    ----------
    image : ndarray
        (H, W, C) float, linear.
    valid : ndarray or None
        (H, W) bool, False where the image has no data (ignored by the fit).
    """
    rows, cols, n_ch = image.shape
    cell = max(2, min(rows, cols) // CELLS_SHORT_SIDE)
    ny, nx = rows // cell, cols // cell
    if ny < 3 or nx < 3:
        return np.broadcast_to(np.nanmedian(image, axis=(0, 1)), image.shape).copy()
    body = image[: ny * cell, : nx * cell].reshape(ny, cell, nx, cell, n_ch)
    medians = np.nanmedian(body, axis=(1, 3)).reshape(-1, n_ch)  # (cells, C)
    good = np.isfinite(medians).all(axis=1)
    if valid is not None:
        cover = valid[: ny * cell, : nx * cell].reshape(ny, cell, nx, cell).mean(axis=(1, 3))
        good &= cover.reshape(-1) > 0.99
    cy, cx = np.mgrid[0:ny, 0:nx]
    # cell centres in units of the image size, centred: a well-conditioned design
    xs = ((cx.reshape(-1) + 0.5) * cell - cols / 2) / cols
    ys = ((cy.reshape(-1) + 0.5) * cell - rows / 2) / rows
    design = _design(xs, ys)
    lum = medians.sum(axis=1)
    keep = good.copy()
    coef = np.zeros((design.shape[1], n_ch))
    for _ in range(CLIP_ITERATIONS):
        if keep.sum() < 2 * design.shape[1]:
            break
        coef, *_ = np.linalg.lstsq(design[keep], medians[keep], rcond=None)
        resid = lum - design @ coef.sum(axis=1)
        spread = 1.4826 * np.median(np.abs(resid[keep] - np.median(resid[keep])))
        spread = max(spread, 1e-6)
        # objects only add light: clip high cells hard, low ones (dust lanes, edge
        # artefacts) at the usual threshold
        new = good & (resid < CLIP_SIGMA * spread) & (resid > -2 * CLIP_SIGMA * spread)
        if np.array_equal(new, keep):
            break
        keep = new
    gy, gx = np.mgrid[0:rows, 0:cols]
    full = _design(
        ((gx.reshape(-1) + 0.5) - cols / 2) / cols, ((gy.reshape(-1) + 0.5) - rows / 2) / rows
    )
    model = (full @ coef).reshape(rows, cols, n_ch)
    return model.astype(np.float32)


def neutralise(residual: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Scale the colours of a background-free (H, W, 3) image to balance its objects'
    light (in place; returned).

    Each colour is scaled so that the summed light of the bright, unsaturated pixels
    (stars and target) is equal in red, green and blue: an average-white reference, as
    Siril's and PixInsight's neutralisation assume when no catalogue is at hand."""
    if residual.ndim != 3 or residual.shape[2] != 3:
        return residual
    lum = residual.sum(axis=2)
    sample = lum[valid] if valid is not None else lum.reshape(-1)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return residual
    sigma = 1.4826 * float(np.median(np.abs(sample - np.median(sample)))) or 1.0
    top = np.nanmax(residual, axis=(0, 1))
    bright = lum > BRIGHT_SIGMA * sigma
    bright &= (residual < SATURATION_FRACTION * top).all(axis=2)
    if valid is not None:
        bright &= valid
    if bright.sum() < 20:
        return residual
    light = residual[bright].sum(axis=0)
    if not (light > 0).all():
        return residual
    scale = np.clip(light[1] / light, *BALANCE_RANGE)
    residual *= scale.astype(residual.dtype)
    return residual


def remove_gradient(
    image: np.ndarray,
    valid: np.ndarray | None = None,
    white_balance: tuple[float, float, float] | None = None,
) -> np.ndarray:
    """Background-subtracted, colour-balanced copy of an (H, W) or (H, W, 3) image.

    ``white_balance`` (red, green, blue factors from a catalogue colour calibration:
    the stack header's ``WBR``/``WBG``/``WBB``) replaces the balance that
    :func:`neutralise` estimates from the image's own bright pixels.
    """
    planes = image[..., None] if image.ndim == 2 else image
    work = np.asarray(planes, dtype=np.float32).copy()
    work -= fit_background(work, valid)
    if work.shape[2] == 3:
        if white_balance is not None:
            work *= np.asarray(white_balance, dtype=np.float32)
        else:
            neutralise(work, valid)
    return work if image.ndim == 3 else work[..., 0]
