"""Plate-solve and calibrate a written stack in place: :func:`solve_stack_file`.

The stack's STAR-TAB is the star list (nothing is detected twice). A solved stack gets
the TAN-SIP WCS in every image HDU, the solution, footprint, HEALPix pixels and
calibration in PRIMARY (the mount's pointing kept as ``RA_MNT``/``DEC_MNT``), sky and
catalogue columns in STAR-TAB, and a star JSON beside it in the shape of the data
API's ``frame_stars``; an unsolved one only ``PLTSOLVD = F`` and the reason. The file
is rewritten atomically.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crowdsky.astrometry import colour_balance, colours, errors, photometry, solver
from crowdsky.healpix import healpix_ring_pixel

__all__ = ["StackAstrometry", "mark_unsolved", "solve_stack_file", "star_json_path"]

HEALPIX_NSIDE = 128
IMAGE_EXTENSIONS = ("RED", "GREEN", "BLUE", "LUM", "FOOTPRINT")
PLANE_NAMES = ("RED", "GREEN", "BLUE", "LUM")
ZP_KEYS = {"RED": "ZPR", "GREEN": "ZPG", "BLUE": "ZPB", "LUM": "ZPL"}
SCALE_TOLERANCE = 0.08
"""Pixel-scale hint from FOCALLEN/XPIXSZ: ± this fraction."""
MESSAGE_LENGTH = 68


@dataclass(frozen=True, slots=True)
class StackAstrometry:
    """What plate solving and calibration gave for one stack (all JSON-safe scalars).

    ``solved`` False leaves every sky field None and says why in ``message``.
    """

    solved: bool
    message: str
    ra_deg: float | None = None
    dec_deg: float | None = None
    healpix: int | None = None
    healpix_pixels: tuple[int, ...] = ()
    corners_deg: tuple[tuple[float, float], ...] = ()
    scale_arcsec: float | None = None
    rotation_deg: float | None = None
    mirrored: bool | None = None
    rms_arcsec: float | None = None
    n_matched: int = 0
    strategy: str = ""
    zero_points: dict[str, float] | None = None
    zero_point_scatter: dict[str, float] | None = None
    zero_point_stars: dict[str, int] | None = None
    limiting_mag: float | None = None
    sqm: float | None = None
    photometry_message: str = ""
    white_balance: dict[str, float] | None = None
    colour_stars: int = 0
    colour_message: str = ""
    solve_seconds: float = 0.0
    total_seconds: float = 0.0
    star_json: Path | None = None

    def to_metadata(self) -> dict[str, Any]:
        """The optional ``complete_job`` fields (names as on the stack row)."""
        zp = self.zero_points or {}
        scatter = self.zero_point_scatter or {}
        stars = self.zero_point_stars or {}
        return {
            "plate_solved": self.solved,
            "solve_message": self.message[:255],
            "wcs_ra_deg": self.ra_deg,
            "wcs_dec_deg": self.dec_deg,
            "wcs_healpix": self.healpix,
            "wcs_scale_arcsec": self.scale_arcsec,
            "wcs_rotation_deg": self.rotation_deg,
            "wcs_rms_arcsec": self.rms_arcsec,
            "wcs_n_matched": self.n_matched if self.solved else None,
            "wcs_corners": [[r, d] for r, d in self.corners_deg] or None,
            "wcs_healpix_pixels": list(self.healpix_pixels) or None,
            "phot_zp_r": _finite_or_none(zp.get("RED")),
            "phot_zp_g": _finite_or_none(zp.get("GREEN", zp.get("LUM"))),
            "phot_zp_b": _finite_or_none(zp.get("BLUE")),
            "phot_zp_scatter": _finite_or_none(scatter.get("GREEN", scatter.get("LUM"))),
            "phot_n_stars": stars.get("GREEN", stars.get("LUM")) if self.zero_points else None,
            "phot_limit_mag": _finite_or_none(self.limiting_mag),
            "phot_sqm": _finite_or_none(self.sqm),
        }


def star_json_path(fits_path: Path | str) -> Path:
    """``stack_X.fits`` → ``stack_X_stars.json`` beside it."""
    path = Path(fits_path)
    return path.with_name(f"{path.stem}_stars.json")


def solve_stack_file(
    path: Path | str,
    plate_solver: solver.PlateSolver,
    *,
    write_star_json: bool = True,
) -> StackAstrometry:
    """Solve, calibrate and rewrite one stack in place (atomically).

    Parameters
    ----------
    path : Path or str
        A stack written by :func:`crowdsky.stacking.stack_files` (PRIMARY,
        colour planes, FOOTPRINT, STAR-TAB, FRAMES).
    plate_solver : PlateSolver
        A loaded solver (kept between stacks by long-lived workers).
    write_star_json : bool
        Also write :func:`star_json_path` of the file.

    Returns
    -------
    StackAstrometry

    Raises
    ------
    AstrometryError
        The file is not a stack (no STAR-TAB) or cannot be rewritten.
    """
    from astropy.io import fits

    started = time.perf_counter()
    path = Path(path)
    try:
        hdul = fits.open(path, memmap=False)
    except Exception as exc:
        raise errors.AstrometryError(f"{path.name}: cannot read the stack ({exc})") from exc
    with hdul:
        if "STAR-TAB" not in hdul:
            raise errors.AstrometryError(f"{path.name}: no STAR-TAB to solve from")
        primary = hdul[0].header
        stars = np.asarray(hdul["STAR-TAB"].data)
        plane_names = [n for n in PLANE_NAMES if n in hdul]
        if not plane_names:
            raise errors.AstrometryError(f"{path.name}: no colour plane")
        shape = tuple(int(s) for s in hdul[plane_names[0]].data.shape)
        order = np.argsort(-np.nan_to_num(stars["flux"], nan=-np.inf), kind="stable")
        xy = np.column_stack([stars["x"][order], stars["y"][order]]).astype(np.float64)
        hint = _hint(primary)
        found = plate_solver.solve(
            xy, (shape[0], shape[1]), hint_deg=hint, scale_range_arcsec=_scale_range(primary)
        )
        # back to STAR-TAB order
        cat_index = np.full(len(stars), -1, dtype=np.int64)
        dist = np.full(len(stars), np.nan)
        cat_index[order] = found.star_cat_index
        dist[order] = found.match_dist_arcsec
        if found.solved:
            result = _apply_solution(
                hdul, found, stars, cat_index, dist, plane_names, plate_solver.colours
            )
        else:
            result = StackAstrometry(False, found.reason, solve_seconds=found.seconds)
            _write_unsolved(hdul, result.message, stars)
        json_path = star_json_path(path) if write_star_json else None
        if json_path is not None:
            _write_star_json(json_path, hdul["STAR-TAB"].data, shape)
        _rewrite(path, hdul)
    return _replace(result, total_seconds=time.perf_counter() - started, star_json=json_path)


def mark_unsolved(path: Path | str, reason: str) -> None:
    """Write ``PLTSOLVD = F`` and ``reason`` into a stack that was not solved at all
    (no solver installed, or solving failed), keeping everything else."""
    from astropy.io import fits

    path = Path(path)
    try:
        with fits.open(path, memmap=False) as hdul:
            stars = np.asarray(hdul["STAR-TAB"].data) if "STAR-TAB" in hdul else None
            _write_unsolved(hdul, reason, stars)
            _rewrite(path, hdul)
    except errors.AstrometryError:
        raise
    except Exception as exc:
        raise errors.AstrometryError(f"{path.name}: cannot mark as unsolved ({exc})") from exc


# -- header and table ---------------------------------------------------------------


def _hint(header: Any) -> tuple[float, float] | None:
    ra, dec = header.get("RA"), header.get("DEC")
    if (
        isinstance(ra, int | float)
        and isinstance(dec, int | float)
        and math.isfinite(ra)
        and math.isfinite(dec)
        and -90 <= dec <= 90
    ):
        return float(ra) % 360.0, float(dec)
    return None


def _scale_range(header: Any) -> tuple[float, float]:
    focal, pixel = header.get("FOCALLEN"), header.get("XPIXSZ")
    if (
        isinstance(focal, int | float)
        and isinstance(pixel, int | float)
        and focal > 0
        and pixel > 0
    ):
        binning = header.get("XBINNING", 1)
        binning = binning if isinstance(binning, int) and binning > 0 else 1
        scale = 206.264806 * pixel * binning / focal
        return scale * (1 - SCALE_TOLERANCE), scale * (1 + SCALE_TOLERANCE)
    return solver.DEFAULT_SCALE_RANGE_ARCSEC


@dataclass(frozen=True, slots=True)
class _Field:
    """Where a solved stack lies on the sky."""

    ra_deg: float  # centre
    dec_deg: float
    corners_deg: tuple[tuple[float, float], ...]  # (RA, Dec) of the outer pixel corners
    healpix: int  # of the centre
    healpix_pixels: tuple[int, ...]  # of the footprint
    radius_deg: float  # of a cone holding the whole field, with 5 % to spare


def _field(fit: Any) -> _Field:
    rows, cols = fit.shape
    centre = fit.pixel_to_world(np.array([(cols - 1) / 2.0]), np.array([(rows - 1) / 2.0]))
    ra_c, dec_c = float(centre[0][0]), float(centre[1][0])
    corner_x = np.array([-0.5, cols - 0.5, cols - 0.5, -0.5])
    corner_y = np.array([-0.5, -0.5, rows - 0.5, rows - 0.5])
    c_ra, c_dec = fit.pixel_to_world(corner_x, corner_y)
    return _Field(
        ra_deg=ra_c,
        dec_deg=dec_c,
        corners_deg=tuple((float(r), float(d)) for r, d in zip(c_ra, c_dec, strict=True)),
        healpix=healpix_ring_pixel(ra_c, dec_c, HEALPIX_NSIDE),
        healpix_pixels=_footprint_pixels(fit),
        radius_deg=0.5 * math.hypot(rows, cols) * fit.scale_arcsec / 3600.0 * 1.05,
    )


def _apply_solution(
    hdul: Any,
    found: solver.Solution,
    stars: np.ndarray,
    cat_index: np.ndarray,
    dist: np.ndarray,
    plane_names: list[str],
    colour_catalogue: colours.ColourCatalogue | None,
) -> StackAstrometry:
    """Calibrate a solved stack and write the solution into it: header cards of every
    image HDU, sky and catalogue columns of STAR-TAB."""
    fit = found.wcs
    cat = found.catalogue_stars
    assert fit is not None and cat is not None
    primary = hdul[0].header
    field = _field(fit)
    x, y = stars["x"].astype(float), stars["y"].astype(float)
    ra, dec = fit.pixel_to_world(x, y)
    matched = cat_index >= 0
    cat_id = np.zeros(len(stars), dtype=np.int64)
    cat_mag = np.full(len(stars), np.nan)
    cat_id[matched] = cat.star_id[cat_index[matched]]
    cat_mag[matched] = cat.mag[cat_index[matched]]
    exposure = _sub_exposure_s(primary)
    phot = photometry.calibrate(
        {n: np.asarray(hdul[n].data) for n in plane_names},
        x,
        y,
        stars["fwhm"].astype(float) if "fwhm" in stars.dtype.names else np.array([]),
        cat_mag,
        exposure_s=exposure,
        scale_arcsec=fit.scale_arcsec,
        pedestal_adu=photometry.pedestal_from_header(primary),
    )
    centre = (field.ra_deg, field.dec_deg)
    colour = _colour_balance(colour_catalogue, centre, field.radius_deg, ra, dec, phot)
    result = _solved(found, field, phot, colour)
    _write_plate_cards(hdul, found, field, result.message)
    primary["PHOTCAT"] = (_catalogue_title(found), "reference catalogue")
    primary["PHOTBAND"] = ("VT", "catalogue magnitude (Tycho-2 V_T)")
    primary["CATNSTAR"] = (len(cat), "catalogue stars in the field")
    primary["CATMATCH"] = (int(matched.sum()), "STAR-TAB stars with a catalogue star")
    _write_photometry_cards(primary, phot, exposure)
    _write_colour_cards(primary, colour, colour_catalogue)
    table = _star_table(stars, ra, dec, cat_id, cat_mag, dist, phot.star_flux, colour.b_v)
    _replace_star_table(hdul, table, found)
    return result


def _sub_exposure_s(primary: Any) -> float:
    """Exposure of one sub-frame: the zero points are per sub, whatever was stacked."""
    ncombine = primary.get("NCOMBINE") or 1
    return float(primary.get("EXPTIME") or 0.0) / max(1, int(ncombine))


def _solved(
    found: solver.Solution,
    field: _Field,
    phot: photometry.Photometry,
    colour: colour_balance.ColourBalance,
) -> StackAstrometry:
    fit = found.wcs
    assert fit is not None
    calibrated = phot.calibrated
    return StackAstrometry(
        True,
        f"solved ({found.strategy}, {found.index_name}): {found.reason}",
        ra_deg=field.ra_deg,
        dec_deg=field.dec_deg,
        healpix=field.healpix,
        healpix_pixels=field.healpix_pixels,
        corners_deg=field.corners_deg,
        scale_arcsec=fit.scale_arcsec,
        rotation_deg=fit.rotation_deg,
        mirrored=fit.determinant > 0,
        rms_arcsec=found.rms_arcsec,
        n_matched=found.n_matched,
        strategy=found.strategy,
        zero_points={c.name: c.zp for c in phot.channels} if calibrated else None,
        zero_point_scatter={c.name: c.scatter for c in phot.channels} if calibrated else None,
        zero_point_stars={c.name: c.n_stars for c in phot.channels} if calibrated else None,
        limiting_mag=phot.limiting_mag if calibrated else None,
        sqm=phot.sqm if calibrated else None,
        photometry_message=phot.reason,
        white_balance=colour.factors or None,
        colour_stars=colour.n_stars,
        colour_message=colour.reason,
        solve_seconds=found.seconds,
    )


def _write_plate_cards(hdul: Any, found: solver.Solution, field: _Field, message: str) -> None:
    """The WCS into every image HDU; the solution's cards into PRIMARY (the mount's
    pointing kept as RA_MNT / DEC_MNT)."""
    fit = found.wcs
    assert fit is not None
    primary = hdul[0].header
    cards = fit.header_cards()
    for name in IMAGE_EXTENSIONS:
        if name in hdul:
            _set_wcs(hdul[name].header, cards)
    _set_wcs(primary, cards)
    _clear_plate_keys(primary)
    for key in ("RA", "DEC"):
        if key in primary:
            primary[f"{key}_MNT"] = (primary[key], "[deg] mount pointing (header of the frames)")
    primary["RA"] = (round(field.ra_deg, 7), "[deg] plate-solved centre of the stack")
    primary["DEC"] = (round(field.dec_deg, 7), "[deg] plate-solved centre of the stack")
    primary["PLTSOLVD"] = (True, "plate solved")
    primary["PLTMSG"] = _fits_text(message)
    primary["PLTSCALE"] = (round(fit.scale_arcsec, 5), "[arcsec/px] solved pixel scale")
    primary["PIXSCALE"] = (round(fit.scale_arcsec, 5), "[arcsec/px] solved pixel scale")
    primary["PLTROT"] = (round(fit.rotation_deg, 4), "[deg] PA of image +y, N through E")
    primary["PLTPAR"] = (
        "mirrored" if fit.determinant > 0 else "normal",
        "image parity (det CD > 0: mirrored)",
    )
    primary["PLTRMS"] = (round(found.rms_arcsec, 4), "[arcsec] RMS catalogue - WCS(detected)")
    primary["PLTNSTAR"] = (found.n_matched, "stars matched to the catalogue")
    primary["PLTSTRAT"] = (found.strategy, "hinted by header RA/DEC, or blind")
    primary["PLTINDEX"] = (_index_label(found.index_name), "astrometry.net index that matched")
    primary["PLTSECS"] = (round(found.seconds, 3), "[s] solve wall time")
    for k, (r, d) in enumerate(field.corners_deg, start=1):
        primary[f"RA_CRN{k}"] = (round(r, 6), f"[deg] RA of footprint corner {k}")
        primary[f"DEC_CRN{k}"] = (round(d, 6), f"[deg] Dec of footprint corner {k}")
    primary["HPNSIDE"] = (HEALPIX_NSIDE, "HEALPix NSIDE (RING) of HEALPIX, HPIXLIST")
    primary["HEALPIX"] = (field.healpix, "HEALPix pixel of the solved centre")
    pixel_list = ",".join(str(p) for p in field.healpix_pixels)
    primary["HPIXLIST"] = pixel_list[:MESSAGE_LENGTH]  # the footprint's pixels


def _write_photometry_cards(primary: Any, phot: photometry.Photometry, exposure: float) -> None:
    """Zero points, limiting magnitude and sky brightness, or why there are none."""
    if not phot.calibrated:
        primary["PHOTMSG"] = _fits_text(phot.reason)
        return
    primary["PHOTAPER"] = (round(phot.aperture_px, 3), "[px] aperture radius")
    primary["PHOTEXPT"] = (round(exposure, 4), "[s] exposure of ZP (one sub-frame)")
    for c in phot.channels:
        key = ZP_KEYS[c.name]
        if math.isfinite(c.zp):
            primary[key] = (round(c.zp, 4), f"{c.name} zero point, mag = ZP-2.5lg(ADU/s)")
            primary[f"{key}ERR"] = (round(c.scatter, 4), f"{c.name} zero point scatter, mag")
        primary[f"{key}N"] = (c.n_stars, f"{c.name} zero point: calibration stars")
    if math.isfinite(phot.limiting_mag):
        primary["LIMMAG"] = (round(phot.limiting_mag, 3), "5 sigma point-source limit (VT)")
    if math.isfinite(phot.sqm):
        primary["SQMPHOT"] = (round(phot.sqm, 3), "[mag/arcsec2] sky brightness (VT)")
        primary["SQMPED"] = (phot.pedestal_adu, "[adu] black level under the sky")


def _colour_balance(
    catalogue: colours.ColourCatalogue | None,
    centre: tuple[float, float],
    radius_deg: float,
    ra: np.ndarray,
    dec: np.ndarray,
    phot: photometry.Photometry,
) -> colour_balance.ColourBalance:
    """The preview white balance from the colour catalogue, or why there is none."""
    nothing = np.full(len(ra), np.nan)
    if catalogue is None:
        reason = "no colour catalogue (install stellarium-data)"
        return colour_balance.ColourBalance({}, {}, math.nan, 0, 0, nothing, reason)
    try:
        field = catalogue.cone(centre[0], centre[1], radius_deg)
    except errors.CatalogueError as exc:
        return colour_balance.ColourBalance({}, {}, math.nan, 0, 0, nothing, str(exc))
    return colour_balance.balance(
        ra, dec, phot.star_flux, phot.star_usable, field.ra_deg, field.dec_deg, field.b_v
    )


def _write_colour_cards(
    primary: Any,
    colour: colour_balance.ColourBalance,
    catalogue: colours.ColourCatalogue | None,
) -> None:
    primary["COLCAL"] = (colour.calibrated, "preview white balance from catalogue B-V")
    if catalogue is not None:
        primary["COLCAT"] = (_fits_text(catalogue.name), "colour catalogue")
    primary["COLNSTAR"] = (colour.n_stars, "stars in the colour calibration")
    if not colour.calibrated:
        primary["COLMSG"] = _fits_text(colour.reason)
        return
    primary["COLBVSUN"] = (colour_balance.SOLAR_B_V, "B-V made neutral (the Sun)")
    for name, key in (("RED", "WBR"), ("GREEN", "WBG"), ("BLUE", "WBB")):
        primary[key] = (round(colour.factors[name], 5), f"{name} preview factor (not science)")
    primary["COLSLR"] = (round(colour.slopes["RED"], 4), "d(R-G)/d(B-V) instrumental")
    primary["COLSLB"] = (round(colour.slopes["BLUE"], 4), "d(B-G)/d(B-V) instrumental")
    primary["COLERR"] = (round(colour.scatter, 4), "colour fit scatter, mag")


def _index_label(name: str) -> str:
    for suffix in (".fits", ".littleendian", ".bigendian"):
        name = name.removesuffix(suffix)
    return name[:30]


def _catalogue_title(found: solver.Solution) -> str:
    name = found.catalogue_name
    if "tycho2" in name:
        return f"Tycho-2 (index {found.catalogue_index_id})"
    return _index_label(name)


def _footprint_pixels(fit: Any) -> tuple[int, ...]:
    rows, cols = fit.shape
    gx, gy = np.meshgrid(np.linspace(-0.5, cols - 0.5, 9), np.linspace(-0.5, rows - 0.5, 9))
    ra, dec = fit.pixel_to_world(gx.ravel(), gy.ravel())
    return tuple(
        sorted(
            {
                healpix_ring_pixel(float(r), float(d), HEALPIX_NSIDE)
                for r, d in zip(ra, dec, strict=True)
            }
        )
    )


def _set_wcs(header: Any, cards: list[tuple[str, Any, str]]) -> None:
    for key in [k for k in header if _is_wcs_key(str(k))]:
        del header[key]
    for key, value, comment in cards:
        header[key] = (value, comment)


def _is_wcs_key(key: str) -> bool:
    prefixes = ("CTYPE", "CUNIT", "CRVAL", "CRPIX", "CD1_", "CD2_", "PC1_", "PC2_", "CDELT")
    if key.startswith(prefixes) or key in ("WCSAXES", "RADESYS", "EQUINOX", "LONPOLE", "LATPOLE"):
        return True
    head = key.split("_", 1)[0]
    return head in ("A", "B", "AP", "BP") and "_" in key


PLATE_KEYS = (
    "PLTSOLVD", "PLTMSG", "PLTSCALE", "PIXSCALE", "PLTROT", "PLTPAR", "PLTRMS", "PLTNSTAR",
    "PLTSTRAT", "PLTINDEX", "PLTSECS", "HPNSIDE", "HEALPIX", "HPIXLIST", "PHOTCAT", "PHOTBAND",
    "CATNSTAR", "CATMATCH", "PHOTAPER", "PHOTEXPT", "LIMMAG", "SQMPHOT", "SQMPED", "PHOTMSG",
    "COLCAL", "COLCAT", "COLNSTAR", "COLMSG", "COLBVSUN", "WBR", "WBG", "WBB", "COLSLR",
    "COLSLB", "COLERR",
)  # fmt: skip


def _clear_plate_keys(header: Any) -> None:
    for key in list(header.keys()):
        if key in PLATE_KEYS or key.startswith(("RA_CRN", "DEC_CRN", "ZP")):
            del header[key]


def _write_unsolved(hdul: Any, reason: str, stars: np.ndarray | None) -> None:
    primary = hdul[0].header
    for name in (*IMAGE_EXTENSIONS, "PRIMARY"):
        if name in hdul:
            header = hdul[name].header
            for key in [k for k in header if _is_wcs_key(str(k))]:
                del header[key]
    _clear_plate_keys(primary)
    primary["PLTSOLVD"] = (False, "not plate solved: see PLTMSG")
    primary["PLTMSG"] = _fits_text(reason)
    if len(_fits_text(reason, 10_000)) > MESSAGE_LENGTH:
        primary.add_comment(f"plate solving: {_fits_text(reason, 10_000)}")
    if stars is not None:
        n = len(stars)
        nan = np.full(n, np.nan)
        table = _star_table(stars, nan, nan, np.zeros(n, dtype=np.int64), nan, nan, {}, nan)
        _replace_star_table(hdul, table, None)


SKY_COLUMNS = ("ra", "dec", "cat_id", "cat_mag", "cat_bv", "match_dist_arcsec", "matched")


def _star_table(
    stars: np.ndarray,
    ra: np.ndarray,
    dec: np.ndarray,
    cat_id: np.ndarray,
    cat_mag: np.ndarray,
    dist: np.ndarray,
    fluxes: dict[str, np.ndarray],
    cat_bv: np.ndarray,
) -> np.ndarray:
    base = [
        (n, stars.dtype[n])
        for n in stars.dtype.names
        if n not in SKY_COLUMNS and not n.startswith("flux_")
    ]
    extra = [
        ("ra", "f8"),
        ("dec", "f8"),
        ("cat_id", "i8"),
        ("cat_mag", "f8"),
        ("cat_bv", "f8"),
        ("match_dist_arcsec", "f8"),
        ("matched", "?"),
    ] + [(f"flux_{name.lower()}", "f8") for name in fluxes]
    out = np.zeros(len(stars), dtype=base + extra)
    for name, _ in base:
        out[name] = stars[name]
    out["ra"], out["dec"] = ra, dec
    out["cat_id"], out["cat_mag"], out["match_dist_arcsec"] = cat_id, cat_mag, dist
    out["cat_bv"] = cat_bv
    out["matched"] = cat_id > 0
    for name, values in fluxes.items():
        out[f"flux_{name.lower()}"] = values
    return out


def _replace_star_table(hdul: Any, table: np.ndarray, found: solver.Solution | None) -> None:
    from astropy.io import fits

    old = hdul["STAR-TAB"]
    new = fits.BinTableHDU(table, name="STAR-TAB")
    for card in old.header.cards:
        if card.keyword == "COMMENT":
            new.header.add_comment(card.value)
    new.header.add_comment("ra, dec: ICRS degrees from the WCS (NaN when not plate solved)")
    new.header.add_comment("cat_id: catalogue row + 1 (0 = unmatched); cat_mag: V_T (NaN)")
    new.header.add_comment("cat_bv: B-V of the colour catalogue (NaN when none)")
    if found is not None:
        new.header["CATALOG"] = (_catalogue_title(found), "cross-match catalogue")
    hdul[hdul.index_of("STAR-TAB")] = new


JSON_COLUMNS = (
    "x", "y", "flux", "a", "b", "flag", "peak", "ra", "dec", "fwhm", "cat_id", "cat_mag",
    "cat_bv", "match_dist_arcsec",
)  # fmt: skip
"""STAR-TAB columns of the star JSON (``frame_stars``' shape plus the sky columns)."""


def _write_star_json(path: Path, table: Any, shape: tuple[int, ...]) -> None:
    table = np.asarray(table)
    names = table.dtype.names or ()
    keys = [k for k in JSON_COLUMNS if k in names]
    columns = []
    for key in keys:  # column by column: a row loop over a FITS table costs ~4 ms a star
        values = table[key]
        if values.dtype.kind in "iub":
            columns.append([int(v) for v in values.tolist()])
        else:
            rounded = np.round(values.astype(np.float64), 8)
            columns.append([v if math.isfinite(v) else None for v in rounded.tolist()])
    stars = [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)]
    body = {"width": int(shape[1]), "height": int(shape[0]), "stars": stars}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(body, separators=(",", ":")))
    os.replace(tmp, path)


def _rewrite(path: Path, hdul: Any) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        hdul.writeto(tmp, overwrite=True, output_verify="exception")
        os.replace(tmp, path)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise errors.AstrometryError(f"cannot rewrite {path.name}: {exc}") from exc


def _fits_text(text: str, limit: int = MESSAGE_LENGTH) -> str:
    """Header-safe text: ASCII (″ → ", ′ → '), at most ``limit`` characters."""
    text = text.replace("″", '"').replace("′", "'").replace("σ", "sigma")
    return text.encode("ascii", "replace").decode("ascii")[:limit]


def _finite_or_none(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _replace(result: StackAstrometry, **changes: Any) -> StackAstrometry:
    from dataclasses import replace

    return replace(result, **changes)
