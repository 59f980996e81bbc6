"""Ground truth of a simulated sequence: the records the stacking tests compare against.

Star positions are pixels of the *sky canvas*, a fixed grid the size of a frame
attached to the sky; ``FrameTruth.sky_to_frame`` maps the canvas into each frame and
:func:`relative_transform` one frame into another, in the convention of
:mod:`crowdsky.simulate.geometry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from crowdsky.simulate import geometry, sensor

__all__ = [
    "FRAME_KINDS",
    "FrameTruth",
    "SimulatedSequence",
    "relative_transform",
]

#: Every value ``FrameTruth.kind`` can take.
FRAME_KINDS = ("normal", "satellite", "cloudy", "foreign", "hot_pixels_only", "smeared")


@dataclass(frozen=True, eq=False)
class FrameTruth:
    """What was injected into one simulated frame.

    Attributes
    ----------
    path : pathlib.Path
        The written file.
    index : int
        Position in the sequence, from 0.
    date_obs : datetime
        Aware UTC exposure start (the header's DATE-OBS).
    sky_to_frame : numpy.ndarray
        ``(2, 3)`` float64 map from sky-canvas to frame pixel coordinates. For a
        ``'foreign'`` frame it is the nominal pointing, although the frame shows
        another field.
    kind : str
        One of :data:`FRAME_KINDS`.
    trail : tuple of float or None
        ``(x0, y0, x1, y1)`` end points of the satellite trail in frame pixels.
    sky_adu : float
        Mean background level of the frame (pedestal included), ADU.
    noise_adu : float
        Per-pixel background noise, ADU RMS.
    fwhm_px : float
        PSF FWHM of this frame (seeing varies a little frame to frame).
    transparency : float
        Fraction of star light that reached the sensor (1 clear, 0.3 cloudy).
    """

    path: Path
    index: int
    date_obs: datetime
    sky_to_frame: np.ndarray
    kind: str
    trail: tuple[float, float, float, float] | None
    sky_adu: float
    noise_adu: float
    fwhm_px: float = 2.6
    transparency: float = 1.0

    @property
    def frame_to_sky(self) -> np.ndarray:
        """Inverse of :attr:`sky_to_frame`: frame pixels to sky-canvas pixels."""
        return geometry.invert_affine(self.sky_to_frame)

    def project(self, sky_xy: np.ndarray) -> np.ndarray:
        """Map ``(n, 2)`` sky-canvas points to this frame's pixel coordinates."""
        return geometry.apply_affine(self.sky_to_frame, sky_xy)


@dataclass(frozen=True, eq=False)
class SimulatedSequence:
    """A written sequence with its ground truth.

    Attributes
    ----------
    paths : list of pathlib.Path
        Written files, in time order.
    truth : list of FrameTruth
        One record per file, same order.
    stars : numpy.ndarray
        Structured catalogue covering every frame: ``x``, ``y`` on the sky
        canvas; ``flux``, the total ADU of the star before transparency and CFA
        response (aperture photometry on a debayered green plane recovers
        ``flux * g``, on red ``flux * r * 0.55``); ``r``, ``g``, ``b`` colour
        weights (mean 1, ``g`` = 1).
    object_name : str
        OBJECT keyword.
    ra_deg, dec_deg : float
        Pointing written to RA and DEC.
    shape : tuple of int
        Frame shape (rows, columns).
    hot_pixels_xy : numpy.ndarray
        ``(n, 2)`` int ``(x, y)`` of the fixed hot pixels, sensor coordinates.
    """

    paths: list[Path]
    truth: list[FrameTruth]
    stars: np.ndarray
    object_name: str
    ra_deg: float
    dec_deg: float
    shape: tuple[int, int] = sensor.FULL_SHAPE
    hot_pixels_xy: np.ndarray | None = None

    def stars_in_frame(
        self, index: int, *, margin_px: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the catalogue stars inside frame ``index`` and their frame positions.

        Parameters
        ----------
        index : int
            Frame index.
        margin_px : float
            Keep only stars at least this far inside the frame edges.

        Returns
        -------
        stars : numpy.ndarray
            Subset of :attr:`stars`.
        frame_xy : numpy.ndarray
            ``(n, 2)`` positions of those stars in the frame's pixels.
        """
        n_rows, n_cols = self.shape
        sky_xy = np.column_stack([self.stars["x"], self.stars["y"]])
        frame_xy = self.truth[index].project(sky_xy)
        inside = (
            (frame_xy[:, 0] >= margin_px - 0.5)
            & (frame_xy[:, 0] <= n_cols - 0.5 - margin_px)
            & (frame_xy[:, 1] >= margin_px - 0.5)
            & (frame_xy[:, 1] <= n_rows - 0.5 - margin_px)
        )
        return self.stars[inside], frame_xy[inside]


def relative_transform(a: FrameTruth, b: FrameTruth) -> np.ndarray:
    """Return the matrix mapping frame ``a`` pixel coordinates to frame ``b``'s.

    It equals ``sky_to_frame_b ∘ inverse(sky_to_frame_a)``: a point at pixel
    ``(x, y)`` of ``a`` (``x`` column, ``y`` row, integer = pixel centre) shows
    the same sky as ``M[:, :2] @ (x, y) + M[:, 2]`` in ``b``. Pass it to
    ``cv2.warpAffine(frame_a, M, size_b)`` to resample ``a`` onto ``b``.

    Parameters
    ----------
    a, b : FrameTruth
        Truth records of two frames of the same sequence.

    Returns
    -------
    numpy.ndarray
        ``(2, 3)`` float64 affine matrix.
    """
    return geometry.compose_affine(b.sky_to_frame, geometry.invert_affine(a.sky_to_frame))
