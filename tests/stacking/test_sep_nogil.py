"""sep's C functions through ctypes: sep's own numbers, from any thread, without the GIL."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import sep

from crowdsky.stacking import debayer, detect, errors, io, sep_nogil

SIGMAS = (5.0, 3.0, 2.0)


def _field(seed: int, shape: tuple[int, int] = (240, 320), n_stars: int = 40) -> np.ndarray:
    """Sky with a gradient, noise and Gaussian stars, float32."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    image = 200.0 + 0.03 * cols + 0.02 * rows + rng.normal(0.0, 5.0, shape)
    for _ in range(n_stars):
        x0, y0 = rng.uniform(5, shape[1] - 5), rng.uniform(5, shape[0] - 5)
        sigma, peak = rng.uniform(0.8, 2.0), rng.uniform(30, 3000)
        image += peak * np.exp(-((cols - x0) ** 2 + (rows - y0) ** 2) / (2 * sigma**2))
    return np.ascontiguousarray(image, dtype=np.float32)


def _sep_pipeline(data: np.ndarray, mask: np.ndarray | None) -> tuple[object, ...]:
    """Background, extraction and the two aperture measures with sep's Python API."""
    model = sep.Background(data, bw=32, bh=32, fw=3, fh=3)
    sub = data - model.back()
    raw = sep.extract(sub, 1.5, err=model.globalrms, minarea=3, mask=mask)
    x, y = raw["x"], raw["y"]
    rmax = np.clip(6.0 * raw["a"], 3.0, 30.0)
    sig = np.full(x.size, 1.3)
    return (
        (model.back(), float(model.globalback), float(model.globalrms)),
        {name: raw[name] for name in sep_nogil.EXTRACT_FIELDS.names},
        sep.flux_radius(sub, x, y, rmax, 0.5, normflux=None, subpix=5),
        sep.winpos(sub, x, y, sig),
    )


def _our_pipeline(data: np.ndarray, mask: np.ndarray | None) -> tuple[object, ...]:
    back, level, rms = sep_nogil.background(data, 32)
    sub = data - back
    raw = sep_nogil.extract(sub, 1.5, rms, 3, mask)
    x, y = raw["x"], raw["y"]
    rmax = np.clip(6.0 * raw["a"], 3.0, 30.0)
    sig = np.full(x.size, 1.3)
    return (
        (back, level, rms),
        {name: raw[name] for name in sep_nogil.EXTRACT_FIELDS.names},
        sep_nogil.flux_radius(sub, x, y, rmax, 0.5),
        sep_nogil.winpos(sub, x, y, sig),
    )


def _assert_same(ours: object, theirs: object) -> None:
    if isinstance(ours, dict):
        assert isinstance(theirs, dict) and ours.keys() == theirs.keys()
        for key in ours:
            _assert_same(ours[key], theirs[key])
    elif isinstance(ours, tuple):
        assert isinstance(theirs, tuple) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            _assert_same(a, b)
    else:
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


def test_the_installed_sep_is_bound_through_ctypes() -> None:
    """sep 1.4 (what pyproject allows) passes the self-test; others use sep's Python."""
    bound = sep_nogil._bound()
    assert bool(bound) == sep.__version__.startswith("1.4.")


@pytest.mark.parametrize("masked", [False, True])
def test_every_function_gives_seps_numbers(masked: bool) -> None:
    data = _field(seed=3)
    mask = None
    if masked:
        mask = np.zeros(data.shape, np.bool_)
        mask[:40, :60] = True
        mask[200:, 250:] = True
    ours, theirs = _our_pipeline(data, mask), _sep_pipeline(data, mask)
    assert len(ours[1]["x"]) > 10  # type: ignore[index]
    _assert_same(ours, theirs)


def test_the_engines_detection_on_real_frames_is_seps(real_frames: list[Path]) -> None:
    """find_stars (binned background, extraction, radii, centroids) on real frames gives
    what sep's Python API gives, to the last bit."""
    detect.configure_sep()
    for path in real_frames[:4]:
        frame = io.read_frame(path)
        lum = np.ascontiguousarray(debayer.superpixel_luminance(frame.data), np.float32)
        ours = detect.find_stars(lum, sigmas=SIGMAS, target_stars=40, binned_background=True)
        sep_nogil._library = False  # sep's Python functions from here
        try:
            theirs = detect.find_stars(lum, sigmas=SIGMAS, target_stars=40, binned_background=True)
        finally:
            sep_nogil._library = None
        assert ours.stars.size > 20
        for name in detect.STAR_DTYPE.names or ():  # field by field: NaN FWHMs compare equal
            np.testing.assert_array_equal(ours.stars[name], theirs.stars[name])
        assert (ours.background, ours.noise, ours.threshold_sigma) == (
            theirs.background,
            theirs.noise,
            theirs.threshold_sigma,
        )


def test_threads_get_the_same_results_as_one_thread() -> None:
    """sep keeps its per-call state thread-local: four threads, four fields, each
    measured many times at once, always match the serial result."""
    fields = [_field(seed) for seed in range(4)]
    expected = [_our_pipeline(f, None) for f in fields]
    failures: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for _ in range(6):
                _assert_same(_our_pipeline(fields[k], None), expected[k])
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[0]


def test_the_gil_is_released_while_sep_extracts() -> None:
    """A Python thread keeps counting while extraction runs. Measured: during five
    extractions it counted 0.9× as fast as while the main thread slept; through sep's
    own wrapper, which holds the GIL, 0.1×."""
    data = _field(seed=9, shape=(1200, 1600), n_stars=400)
    back, _, rms = sep_nogil.background(data, 64)
    sub = data - back
    sep_nogil.extract(sub, 1.5, rms, 3, None)  # warm
    ticks = 0
    running, stop = threading.Event(), threading.Event()

    def count() -> None:
        nonlocal ticks
        running.set()
        while not stop.is_set():
            ticks += 1

    counter = threading.Thread(target=count)
    counter.start()
    running.wait()
    try:
        start, began = ticks, time.perf_counter()
        for _ in range(5):
            sep_nogil.extract(sub, 1.5, rms, 3, None)
        during, elapsed = ticks - start, time.perf_counter() - began
        start = ticks
        time.sleep(elapsed)
        idle = ticks - start
    finally:
        stop.set()
        counter.join()
    assert during > 0.35 * idle, f"counted {during} while extracting, {idle} while idle"


def test_a_failed_call_is_a_stacking_error_with_seps_message() -> None:
    lib = sep_nogil._bound()
    if not lib:
        pytest.skip(f"sep {sep.__version__} is used through its Python API")
    with pytest.raises(errors.StackingError, match="sep: "):
        sep_nogil._check(lib, 3)
    with pytest.raises(MemoryError):
        sep_nogil._check(lib, 1)


def test_inputs_ctypes_cannot_take_go_to_sep() -> None:
    """A non-contiguous image or an integer mask is handed to sep's Python API, which
    converts or rejects it as before."""
    data = _field(seed=5)
    strided = data[:, ::2]
    back, level, rms = sep_nogil.background(np.ascontiguousarray(strided), 32)
    with pytest.raises(ValueError, match="C-contiguous"):
        sep_nogil.background(strided, 32)
    mask = np.zeros(data.shape, np.int32)
    mask[:20, :20] = 1
    sub = data - sep_nogil.background(data, 32)[0]
    ours = sep_nogil.extract(sub, 2.0, rms, 3, mask)
    theirs = sep.extract(sub, 2.0, err=rms, minarea=3, mask=mask)
    np.testing.assert_array_equal(ours["x"], theirs["x"])
    assert np.isfinite(level) and back.shape == strided.shape
