"""Large array allocation for the engine: anonymous private mappings, no huge pages.

numpy asks the kernel for transparent huge pages on every large allocation
(``madvise(MADV_HUGEPAGE)``). On virtual machines with ``defrag=madvise`` each such
fault may compact memory synchronously: first-touching a 373 MB frame store took
0.83 s of system time instead of 0.18 s with ordinary pages (measured on the 2-vCPU
benchmark VM). Changing numpy's process-wide switch would affect the host
application, so the engine allocates its frame-sized buffers itself with
``mmap(MAP_PRIVATE | MAP_ANONYMOUS)``, which gets ordinary pages, and wraps them in
numpy arrays. Memory is returned to the system when the array is garbage-collected.
"""

from __future__ import annotations

import math
import mmap

import numpy as np

__all__ = ["empty"]

MIN_MAPPED_BYTES = 1 << 20
"""Smaller arrays come from numpy's allocator (no huge-page advice applies to them)."""


def empty(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """An uninitialised C-contiguous array backed by its own anonymous mapping."""
    dt = np.dtype(dtype)
    nbytes = math.prod(shape) * dt.itemsize
    if nbytes < MIN_MAPPED_BYTES or not hasattr(mmap, "MAP_ANONYMOUS"):
        return np.empty(shape, dtype=dt)
    buffer = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(buffer, dtype=dt).reshape(shape)
