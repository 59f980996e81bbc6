"""The HEALPix RING pixel of a direction (pure: standard library only).

One function shared by the upload intake (chunk keys), the stack catalogue and the
plate solver; a leaf module so that importing it pulls in nothing else (the plate
solver of a fresh worker must not pay for ``crowdsky.ingest``'s database imports).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["HEALPIX_NSIDE", "healpix_ring_pixel", "healpix_ring_pixels"]

HEALPIX_NSIDE = 128


def healpix_ring_pixel(ra_deg: float, dec_deg: float, nside: int = HEALPIX_NSIDE) -> int:
    """HEALPix RING pixel of a direction (Górski et al. 2005, three zones).

    Written to give, bit for bit, the pixel of seestarpy 0.7.1's
    ``crowdsky.healpix.radec_to_healpix`` (which names the stacks made on the
    telescope), and the same pixel as healpy/astropy-healpix away from float ties:

    - RA is reduced modulo 360 *in degrees* before the conversion to radians;
    - ``z`` is the cosine of the colatitude in radians; computing ``sin(dec)``
      instead moves boundary points (RA 0, DEC 0 gives 97 536 here, 98 048 with
      the sine);
    - in the polar caps, points within ``1/36`` of the pole use
      ``sqrt(3) * sqrt(1 - |z|)``, elsewhere ``sqrt(3 (1 - |z|))``, as seestarpy does.
    """
    theta = math.radians(90.0 - dec_deg)
    phi = math.radians(ra_deg % 360.0) % (2.0 * math.pi)
    npix = 12 * nside * nside
    z = math.cos(theta)
    za = abs(z)
    tt = phi / (math.pi / 2.0)  # in [0, 4)
    if za <= 2.0 / 3.0:  # equatorial belt
        temp1 = nside * (0.5 + tt)
        temp2 = nside * z * 0.75
        jp = int(temp1 - temp2)  # index of the ascending edge line
        jm = int(temp1 + temp2)  # index of the descending edge line
        ring = nside + 1 + jp - jm  # 1 .. 2 nside + 1, counted from z = 2/3
        kshift = 1 - (ring & 1)
        ip = ((jp + jm - nside + kshift + 1) // 2) % (4 * nside)
        return 2 * nside * (nside - 1) + (ring - 1) * 4 * nside + ip
    tp = tt - int(tt)
    if za < 1.0 - nside * nside / (3.0 * npix):
        tmp = nside * math.sqrt(3.0 * (1.0 - za))
    else:
        tmp = nside * math.sqrt(3.0) * math.sqrt(1.0 - za)
    jp = int(tp * tmp)
    jm = int((1.0 - tp) * tmp)
    ring = jp + jm + 1  # counted from the nearest pole
    ip = int(tt * ring) % (4 * ring)
    if z > 0:
        return 2 * ring * (ring - 1) + ip
    return npix - 2 * ring * (ring + 1) + ip


def healpix_ring_pixels(ra_deg: np.ndarray, dec_deg: np.ndarray, nside: int) -> np.ndarray:
    """:func:`healpix_ring_pixel` over arrays, for aggregating many stacks at once.

    The same arithmetic, element-wise. numpy's vectorised cosine may differ from the C
    library's in the last bit, which can move a point lying exactly on a pixel edge: use
    it for maps and counts, never for chunk keys (those use the scalar function).
    """
    import numpy as np  # here, so that importing this module stays standard-library only

    theta = np.radians(90.0 - np.asarray(dec_deg, dtype=float))
    phi = np.radians(np.asarray(ra_deg, dtype=float) % 360.0) % (2.0 * math.pi)
    npix = 12 * nside * nside
    z = np.cos(theta)
    za = np.abs(z)
    tt = phi / (math.pi / 2.0)
    pixels = np.empty(z.shape, dtype=np.int64)

    belt = za <= 2.0 / 3.0
    temp1 = nside * (0.5 + tt[belt])
    temp2 = nside * z[belt] * 0.75
    jp = (temp1 - temp2).astype(np.int64)
    jm = (temp1 + temp2).astype(np.int64)
    ring = nside + 1 + jp - jm
    kshift = 1 - (ring & 1)
    ip = ((jp + jm - nside + kshift + 1) // 2) % (4 * nside)
    pixels[belt] = 2 * nside * (nside - 1) + (ring - 1) * 4 * nside + ip

    cap = ~belt
    tc, zc, zac = tt[cap], z[cap], za[cap]
    tp = tc - tc.astype(np.int64)
    near_pole = zac >= 1.0 - nside * nside / (3.0 * npix)
    tmp = np.where(
        near_pole,
        nside * math.sqrt(3.0) * np.sqrt(1.0 - zac),
        nside * np.sqrt(3.0 * (1.0 - zac)),
    )
    jp = (tp * tmp).astype(np.int64)
    jm = ((1.0 - tp) * tmp).astype(np.int64)
    ring = jp + jm + 1
    ip = (tc * ring).astype(np.int64) % (4 * ring)
    pixels[cap] = np.where(zc > 0, 2 * ring * (ring - 1) + ip, npix - 2 * ring * (ring + 1) + ip)
    return pixels
