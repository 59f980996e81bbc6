"""float32 ↔ float16 conversion of the frame store's frames, in numba.

Frames that do not fit the memory budget as float32 are stored as float16, converted
once on the way in and once per band on the way out; numpy converts with scalar code.
numba has no float16 type on the CPU, so these kernels work on the bit patterns
(uint16 / uint32 views) and vectorise, bit-identical to numpy (round half to even,
NaN and ±inf kept; ``tests/stacking/test_half.py`` checks every half).
"""

from __future__ import annotations

import numpy as np

from crowdsky.stacking.kernels import SAFE_FASTMATH, compiled

__all__ = ["F16_MAX", "from_half", "to_half"]

F16_MAX = np.float32(np.finfo(np.float16).max)
_TWO_112 = np.float32(2.0**112)
_TWO_24 = np.float32(2.0**24)
_TWO_MINUS_24 = np.float32(2.0**-24)


def to_half(src: np.ndarray, dst: np.ndarray) -> None:
    """Write float32 ``min(src, 65504)`` as float16 into ``dst`` (same shape; ``dst``
    C-contiguous).

    Values above float16's largest finite value are clipped to it, so saturated
    pixels do not become infinite. Normal results are rebiased and rounded to nearest
    even on the 13 dropped mantissa bits; subnormal results are rounded by scaling by
    2^24 (exact in float32) and ``rint``.
    """
    _check(src, dst, np.float32, np.float16)
    _to_half(np.ascontiguousarray(src).reshape(-1), dst.reshape(-1).view(np.uint16))


def from_half(src: np.ndarray, dst: np.ndarray) -> None:
    """Write float16 ``src`` as float32 into ``dst`` (same shape; ``dst`` C-contiguous).

    Exact: the half's exponent and mantissa bits are moved into place and the result
    multiplied by 2^112 (the difference of the biases); subnormal halves are their
    integer mantissa times 2^-24 (no float32 denormal is read, so a library that
    switches on flush-to-zero cannot zero them); infinities and NaNs are built directly.
    """
    _check(src, dst, np.float16, np.float32)
    _from_half(np.ascontiguousarray(src).reshape(-1).view(np.uint16), dst.reshape(-1))


def _check(src: np.ndarray, dst: np.ndarray, src_type: type, dst_type: type) -> None:
    if src.dtype != src_type or dst.dtype != dst_type or src.shape != dst.shape:
        raise ValueError(
            f"expected {np.dtype(src_type)} → {np.dtype(dst_type)} of one shape, "
            f"got {src.dtype}{src.shape} → {dst.dtype}{dst.shape}"
        )
    if not dst.flags.c_contiguous:  # a reshaped copy would take the result
        raise ValueError("the destination must be C-contiguous")


@compiled(fastmath=SAFE_FASTMATH)
def _to_half(src: np.ndarray, dst: np.ndarray) -> None:
    bits = src.view(np.uint32)
    for i in range(src.shape[0]):
        x = src[i]
        clipped = x > F16_MAX  # False for NaN: NaN passes through
        b = np.uint32(0x477FE000) if clipped else bits[i]  # (0x477FE000: 65504)
        sign = np.uint16((b >> np.uint32(16)) & np.uint32(0x8000))
        a = b & np.uint32(0x7FFFFFFF)
        # normal half: drop 13 mantissa bits, rounding to nearest even, and rebias
        m = a - np.uint32(0x38000000)
        normal = (m + np.uint32(0x0FFF) + ((m >> np.uint32(13)) & np.uint32(1))) >> np.uint32(13)
        # subnormal half (or zero): the value in units of 2^-24, rounded to even
        sub = np.uint32(np.rint(abs(x) * _TWO_24)) if a < np.uint32(0x38800000) else np.uint32(0)
        h = np.uint32(0x7E00)  # NaN
        if a <= np.uint32(0x7F800000):
            if a >= np.uint32(0x477FF000):  # rounds beyond 65504: infinity
                h = np.uint32(0x7C00)
            elif a >= np.uint32(0x38800000):
                h = normal
            else:
                h = sub
        dst[i] = sign | np.uint16(h)


@compiled(fastmath=SAFE_FASTMATH)
def _from_half(src: np.ndarray, dst: np.ndarray) -> None:
    dst_bits = dst.view(np.uint32)  # a view made here: the compiler sees one array
    for i in range(src.shape[0]):
        h = np.uint32(src[i])
        a = h & np.uint32(0x7FFF)
        dst_bits[i] = a << np.uint32(13)  # exponent and mantissa in place, unbiased
    for i in range(src.shape[0]):
        h = np.uint32(src[i])
        a = h & np.uint32(0x7FFF)
        value = dst[i] * _TWO_112
        if a < np.uint32(0x0400):  # subnormal half: from the integer, no float denormal
            value = np.float32(a) * _TWO_MINUS_24  # (exact; immune to flush-to-zero modes)
        if a >= np.uint32(0x7C00):  # inf or NaN
            value = np.inf if a == np.uint32(0x7C00) else np.nan
        dst[i] = -value if h & np.uint32(0x8000) else value
