"""float32 ↔ float16 conversions of the frame store, bit for bit against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from crowdsky.stacking import half


def same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Identical bit patterns, or both NaN (NaN payloads may differ)."""
    bits = a.view(np.uint16 if a.dtype == np.float16 else np.uint32)
    ref = b.view(bits.dtype)
    result: np.ndarray = (bits == ref) | (np.isnan(a) & np.isnan(b))
    return result


def test_every_half_converts_exactly() -> None:
    halves = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    out = np.empty(halves.shape, np.float32)
    half.from_half(halves, out)
    assert same(out, halves.astype(np.float32)).all()


def test_floats_round_like_numpy_and_clip_at_the_largest_half() -> None:
    rng = np.random.default_rng(5)
    patterns = [rng.integers(0, 1 << 32, 2_000_000, dtype=np.uint64)]
    # around every boundary: largest half, the rounding point to inf, smallest normal,
    # subnormal range, the rounding point to zero, inf/NaN, zero, one
    for edge in (
        0x477FE000,
        0x477FF000,
        0x38800000,
        0x38000000,
        0x33000000,
        0x7F800000,
        0,
        0x3F800000,
    ):
        patterns.append(np.arange(edge - 5000, edge + 5000, dtype=np.int64).astype(np.uint64))
    bits = np.concatenate(patterns).astype(np.uint32)
    values = np.concatenate([bits, bits | np.uint32(0x80000000)]).view(np.float32)
    out = np.empty(values.shape, np.float16)
    half.to_half(values, out)
    with np.errstate(over="ignore"):
        expected = np.minimum(values, half.F16_MAX).astype(np.float16)
    assert same(out, expected).all()
    assert not np.isinf(out[values > 0]).any()  # clipped, never +inf


def test_shapes_and_types_are_checked() -> None:
    with pytest.raises(ValueError, match="float32"):
        half.to_half(np.zeros(4, np.float64), np.zeros(4, np.float16))
    with pytest.raises(ValueError, match="shape"):
        half.from_half(np.zeros(4, np.float16), np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="contiguous"):
        half.from_half(np.zeros((4, 4), np.float16)[:, ::2], np.zeros((4, 4), np.float32)[:, ::2])
    src = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]  # a strided source is fine
    dst = np.empty((3, 2), np.float16)
    half.to_half(src, dst)
    np.testing.assert_array_equal(dst, src.astype(np.float16))
