"""sep's background, extraction and aperture functions, run without holding the GIL.

sep's Python functions keep the GIL for as long as their C code runs, so the analysis
threads of a stack took turns in sep. The C functions behind them are exported by sep's
extension module, and their mutable state is thread-local. Here they are called through
ctypes, which releases the GIL around each call. The inputs are the same as those of
sep's wrapper, so the numbers are the same. The structures are declared as in sep 1.4's
``sep.h``. At first use, a self-test compares each function with sep's own on a small
synthetic field (stars, a mask, a gradient). If the build is another, the test fails or
sep is not 1.4, and the functions fall back to sep's Python API.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

import numpy as np

from crowdsky.stacking import errors

__all__ = ["EXTRACT_FIELDS", "background", "extract", "flux_radius", "winpos"]

_TFLOAT, _TDOUBLE, _TBYTE = 42, 82, 11  # sep's data type codes
_SEP_TYPES = {np.dtype(np.float32): _TFLOAT, np.dtype(np.float64): _TDOUBLE}
_NOISE_STDDEV, _THRESH_REL, _FILTER_MATCHED = 1, 0, 1
_DEFAULT_KERNEL = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float32)
"""sep.extract's default filter kernel."""
_ERRMSG_CHARS = 61  # SEP_ERRMSG_NCHAR

EXTRACT_FIELDS = np.dtype(
    [
        ("x", "f8"),
        ("y", "f8"),
        ("a", "f8"),
        ("b", "f8"),
        ("theta", "f8"),
        ("flux", "f8"),
        ("peak", "f8"),
        ("npix", "i8"),
        ("flag", "i8"),
    ]
)
"""The columns of ``sep.extract``'s result this engine reads, with sep's types."""

_c = ctypes
_P = _c.POINTER


class _SepImage(_c.Structure):
    _fields_ = [  # noqa: RUF012 (ctypes reads the class attribute)
        ("data", _c.c_void_p),
        ("noise", _c.c_void_p),
        ("mask", _c.c_void_p),
        ("segmap", _c.c_void_p),
        ("dtype", _c.c_int),
        ("ndtype", _c.c_int),
        ("mdtype", _c.c_int),
        ("sdtype", _c.c_int),
        ("segids", _c.c_void_p),
        ("idcounts", _c.c_void_p),
        ("numids", _c.c_int64),
        ("w", _c.c_int64),
        ("h", _c.c_int64),
        ("noiseval", _c.c_double),
        ("noise_type", _c.c_short),
        ("gain", _c.c_double),
        ("maskthresh", _c.c_double),
    ]


class _SepCatalog(_c.Structure):
    _fields_ = [  # noqa: RUF012 (ctypes reads the class attribute)
        ("nobj", _c.c_int),
        ("thresh", _P(_c.c_float)),
        ("npix", _P(_c.c_int64)),
        ("tnpix", _P(_c.c_int64)),
        ("xmin", _P(_c.c_int64)),
        ("xmax", _P(_c.c_int64)),
        ("ymin", _P(_c.c_int64)),
        ("ymax", _P(_c.c_int64)),
        ("x", _P(_c.c_double)),
        ("y", _P(_c.c_double)),
        ("x2", _P(_c.c_double)),
        ("y2", _P(_c.c_double)),
        ("xy", _P(_c.c_double)),
        ("errx2", _P(_c.c_double)),
        ("erry2", _P(_c.c_double)),
        ("errxy", _P(_c.c_double)),
        ("a", _P(_c.c_float)),
        ("b", _P(_c.c_float)),
        ("theta", _P(_c.c_float)),
        ("cxx", _P(_c.c_float)),
        ("cyy", _P(_c.c_float)),
        ("cxy", _P(_c.c_float)),
        ("cflux", _P(_c.c_float)),
        ("flux", _P(_c.c_float)),
        ("cpeak", _P(_c.c_float)),
        ("peak", _P(_c.c_float)),
        ("xcpeak", _P(_c.c_int64)),
        ("ycpeak", _P(_c.c_int64)),
        ("xpeak", _P(_c.c_int64)),
        ("ypeak", _P(_c.c_int64)),
        ("flag", _P(_c.c_short)),
        ("pix", _c.c_void_p),
        ("objectspix", _c.c_void_p),
    ]


_lock = threading.Lock()
_library: Any = None  # the checked C library; False: sep's Python functions are used


def background(image: np.ndarray, mesh_px: int) -> tuple[np.ndarray, float, float]:
    """``sep.Background(image, bw=mesh_px, bh=mesh_px, fw=3, fh=3)``: its ``back()``,
    ``globalback`` and ``globalrms``."""
    lib = _bound()
    im = _image(image) if lib else None
    if im is None:
        return _sep_background(image, mesh_px)
    return _background(lib, im, image.shape, mesh_px)


def extract(
    data: np.ndarray, thresh: float, noise: float, minarea: int, mask: np.ndarray | None
) -> np.ndarray:
    """``sep.extract(data, thresh, err=noise, minarea=minarea, mask=mask)``, the columns
    of :data:`EXTRACT_FIELDS`."""
    lib = _bound()
    im = _image(data) if lib else None
    if im is None or (mask is not None and not _mask_ok(mask, data)):
        return _sep_extract(data, thresh, noise, minarea, mask)
    return _extract(lib, im, thresh, noise, minarea, mask)


def winpos(
    data: np.ndarray, x: np.ndarray, y: np.ndarray, sig: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``sep.winpos(data, x, y, sig)``: windowed centroids and flags."""
    lib = _bound()
    im = _image(data) if lib else None
    if im is None:
        import sep

        return sep.winpos(data, x, y, sig)  # type: ignore[no-any-return]
    return _winpos(lib, im, x, y, sig)


def flux_radius(
    data: np.ndarray, x: np.ndarray, y: np.ndarray, rmax: np.ndarray, frac: float
) -> tuple[np.ndarray, np.ndarray]:
    """``sep.flux_radius(data, x, y, rmax, frac, normflux=None, subpix=5)``: the radius
    enclosing ``frac`` of the flux within ``rmax``, and flags."""
    lib = _bound()
    im = _image(data) if lib else None
    if im is None:
        import sep

        return sep.flux_radius(  # type: ignore[no-any-return]
            data, x, y, rmax, frac, normflux=None, subpix=5
        )
    return _flux_radius(lib, im, x, y, rmax, frac)


# --- through ctypes ------------------------------------------------------------------


def _background(
    lib: Any, im: _SepImage, shape: tuple[int, ...], mesh_px: int
) -> tuple[np.ndarray, float, float]:
    bkg = _c.c_void_p()
    _check(lib, lib.sep_background(_c.byref(im), mesh_px, mesh_px, 3, 3, 0.0, _c.byref(bkg)))
    try:
        back = np.empty(shape, np.float32)
        _check(lib, lib.sep_bkg_array(bkg, back.ctypes.data, _TFLOAT))
        return back, float(lib.sep_bkg_global(bkg)), float(lib.sep_bkg_globalrms(bkg))
    finally:
        lib.sep_bkg_free(bkg)


def _extract(
    lib: Any, im: _SepImage, thresh: float, noise: float, minarea: int, mask: np.ndarray | None
) -> np.ndarray:
    im.noiseval = float(noise)
    im.noise_type = _NOISE_STDDEV
    if mask is not None:
        im.mask = mask.ctypes.data
        im.mdtype = _TBYTE
    kernel = _DEFAULT_KERNEL
    catalog = _P(_SepCatalog)()
    status = lib.sep_extract(
        _c.byref(im),
        float(thresh),
        _THRESH_REL,
        int(minarea),
        kernel.ctypes.data,
        kernel.shape[1],
        kernel.shape[0],
        _FILTER_MATCHED,
        32,
        0.005,
        1,
        1.0,
        _c.byref(catalog),
    )
    _check(lib, status)
    try:
        cat = catalog.contents
        n = cat.nobj
        out = np.empty(n, EXTRACT_FIELDS)
        for name in EXTRACT_FIELDS.names:
            out[name] = np.ctypeslib.as_array(getattr(cat, name), (n,)) if n else []
        return out
    finally:
        lib.sep_catalog_free(catalog)


def _winpos(
    lib: Any, im: _SepImage, x: np.ndarray, y: np.ndarray, sig: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(x)
    x_out, y_out, flag = np.empty(n), np.empty(n), np.empty(n, np.int16)
    xo, yo, it, fl = _c.c_double(), _c.c_double(), _c.c_int(), _c.c_short()
    ref = _c.byref
    for i, (xi, yi, si) in enumerate(zip(_floats(x), _floats(y), _floats(sig), strict=True)):
        _check(
            lib, lib.sep_windowed(ref(im), xi, yi, si, 11, 0, ref(xo), ref(yo), ref(it), ref(fl))
        )
        x_out[i], y_out[i], flag[i] = xo.value, yo.value, fl.value
    return x_out, y_out, flag


def _flux_radius(
    lib: Any, im: _SepImage, x: np.ndarray, y: np.ndarray, rmax: np.ndarray, frac: float
) -> tuple[np.ndarray, np.ndarray]:
    n = len(x)
    radius, flag = np.empty(n), np.empty(n, np.int16)
    fractions = (_c.c_double * 1)(float(frac))
    r, fl = _c.c_double(), _c.c_short()
    ref = _c.byref
    for i, (xi, yi, ri) in enumerate(zip(_floats(x), _floats(y), _floats(rmax), strict=True)):
        status = lib.sep_flux_radius(
            ref(im), xi, yi, ri, 0, 5, 0, None, fractions, 1, ref(r), ref(fl)
        )
        _check(lib, status)
        radius[i], flag[i] = r.value, fl.value
    return radius, flag


def _floats(values: np.ndarray) -> list[float]:
    return np.asarray(values, dtype=np.float64).reshape(-1).tolist()  # type: ignore[no-any-return]


def _image(data: np.ndarray) -> _SepImage | None:
    """The ``sep_image`` of a C-contiguous 2-D float array (None: let sep handle it)."""
    code = _SEP_TYPES.get(data.dtype)
    if code is None or data.ndim != 2 or not data.flags.c_contiguous:
        return None
    im = _SepImage()
    im.data = data.ctypes.data
    im.dtype = code
    im.h, im.w = data.shape
    return im


def _mask_ok(mask: np.ndarray, data: np.ndarray) -> bool:
    return bool(
        mask.dtype in (np.dtype(np.bool_), np.dtype(np.uint8))
        and mask.shape == data.shape
        and mask.flags.c_contiguous
    )


def _check(lib: Any, status: int) -> None:
    if status == 1:  # MEMORY_ALLOC_ERROR, as sep's wrapper raises it
        raise MemoryError
    if status != 0:
        text = _c.create_string_buffer(_ERRMSG_CHARS)
        lib.sep_get_errmsg(status, text)
        raise errors.StackingError(f"sep: {text.value.decode(errors='replace')}")


# --- sep's Python API (the fallback and the self-test's reference) ------------------


def _sep_background(image: np.ndarray, mesh_px: int) -> tuple[np.ndarray, float, float]:
    import sep

    model = sep.Background(image, bw=mesh_px, bh=mesh_px, fw=3, fh=3)
    return model.back(), float(model.globalback), float(model.globalrms)


def _sep_extract(
    data: np.ndarray, thresh: float, noise: float, minarea: int, mask: np.ndarray | None
) -> np.ndarray:
    import sep

    raw = sep.extract(data, thresh, err=noise, minarea=minarea, mask=mask)
    out = np.empty(raw.size, EXTRACT_FIELDS)
    for name in EXTRACT_FIELDS.names:
        out[name] = raw[name]
    return out


# --- binding and self-test ---------------------------------------------------------


def _bound() -> Any:
    """sep's C library, declared and checked once; False when it failed the check."""
    global _library
    if _library is None:
        with _lock:
            if _library is None:
                _library = _bind()
    return _library


def _bind() -> Any:
    import sep

    if not str(getattr(sep, "__version__", "")).startswith("1.4."):
        return False  # the structures above are sep 1.4's
    try:
        lib = _c.CDLL(sep.__file__)
        _declare(lib)
    except (OSError, AttributeError):
        return False
    try:
        return lib if _agrees_with_sep(lib) else False
    except Exception:  # the C code refused our structures: use sep's Python API
        return False


def _declare(lib: Any) -> None:
    double, short, int_, i64, vp = _c.c_double, _c.c_short, _c.c_int, _c.c_int64, _c.c_void_p
    image = _P(_SepImage)
    lib.sep_background.argtypes = [image, i64, i64, i64, i64, double, _P(vp)]
    lib.sep_bkg_array.argtypes = [vp, vp, int_]
    lib.sep_bkg_global.argtypes = lib.sep_bkg_globalrms.argtypes = [vp]
    lib.sep_bkg_global.restype = lib.sep_bkg_globalrms.restype = _c.c_float
    lib.sep_bkg_free.argtypes = [vp]
    lib.sep_bkg_free.restype = None
    lib.sep_extract.argtypes = [
        image, _c.c_float, int_, int_, vp, i64, i64, int_, int_, double, int_, double,
        _P(_P(_SepCatalog)),
    ]  # fmt: skip
    lib.sep_catalog_free.argtypes = [_P(_SepCatalog)]
    lib.sep_catalog_free.restype = None
    lib.sep_windowed.argtypes = [
        image, double, double, double, int_, short, _P(double), _P(double), _P(int_), _P(short),
    ]  # fmt: skip
    lib.sep_flux_radius.argtypes = [
        image, double, double, double, int_, int_, short, vp, _P(double), i64, _P(double),
        _P(short),
    ]  # fmt: skip
    for name in ("sep_background", "sep_bkg_array", "sep_extract", "sep_windowed",
                 "sep_flux_radius"):  # fmt: skip
        getattr(lib, name).restype = int_
    lib.sep_get_errmsg.argtypes = [int_, _c.c_char_p]
    lib.sep_get_errmsg.restype = None


def _agrees_with_sep(lib: Any) -> bool:
    """Every function gives sep's own numbers on a synthetic field: a sky gradient,
    noise, Gaussian stars and a masked corner."""
    import sep

    rng = np.random.default_rng(7)
    rows, cols = np.mgrid[0:96, 0:128]
    field = (100.0 + 0.05 * cols + rng.normal(0.0, 3.0, (96, 128))).astype(np.float32)
    for x0, y0, peak in ((17.3, 21.6, 500.0), (83.8, 49.2, 80.0), (101.5, 70.1, 260.0)):
        field += (peak * np.exp(-((cols - x0) ** 2 + (rows - y0) ** 2) / 4.5)).astype(np.float32)
    back, level, rms = _background(lib, _need(_image(field)), field.shape, 32)
    if not _same((back, level, rms), _sep_background(field, 32)):
        return False
    data = field - back
    mask = np.zeros(field.shape, np.bool_)
    mask[:12, :20] = True
    for m in (None, mask):
        ours = _extract(lib, _need(_image(data)), 2.0, rms, 3, m)
        if ours.size == 0 or not _same(ours, _sep_extract(data, 2.0, rms, 3, m)):
            return False
    x, y = ours["x"], ours["y"]
    rmax, sig = np.full(x.size, 8.0), np.full(x.size, 1.4)
    radii = _flux_radius(lib, _need(_image(data)), x, y, rmax, 0.5)
    centres = _winpos(lib, _need(_image(data)), x, y, sig)
    return _same(radii, sep.flux_radius(data, x, y, rmax, 0.5, normflux=None, subpix=5)) and _same(
        centres, sep.winpos(data, x, y, sig)
    )


def _need(im: _SepImage | None) -> _SepImage:
    if im is None:
        raise errors.StackingError("self-test image is not a contiguous float array")
    return im


def _same(ours: Any, theirs: Any) -> bool:
    if isinstance(ours, np.ndarray) and ours.dtype.names:
        return all(np.array_equal(ours[n], theirs[n], equal_nan=True) for n in ours.dtype.names)
    if isinstance(ours, tuple):
        return all(_same(a, b) for a, b in zip(ours, theirs, strict=True))
    return bool(np.array_equal(np.asarray(ours), np.asarray(theirs), equal_nan=True))
