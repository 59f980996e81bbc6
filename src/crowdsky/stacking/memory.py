"""Large array allocation for the engine: anonymous private mappings, reused across stacks.

numpy asks the kernel for transparent huge pages on every large allocation
(``madvise(MADV_HUGEPAGE)``). On virtual machines with ``defrag=madvise`` each such
fault may compact memory synchronously: first-touching a 373 MB frame store took
0.83 s of system time instead of 0.18 s with ordinary pages (measured on the 2-vCPU
benchmark VM). Changing numpy's process-wide switch would affect the host
application, so the engine allocates its frame-sized buffers itself with
``mmap(MAP_PRIVATE | MAP_ANONYMOUS)``, which gets ordinary pages, and wraps them in
numpy arrays.

Even ordinary pages cost a fault and the kernel's zeroing when first touched: 0.13 s
of CPU for the 373 MB store of a 15-frame stack, a tenth of the whole stack, paid
again by every job of a long-lived worker. Buffers the engine has finished with are
therefore handed back with :func:`release` and kept for the next :func:`empty` of a
similar size, marked ``MADV_FREE``: the kernel takes the pages back if memory gets
short (the next user then gets fresh zero pages), otherwise they are reused without a
single fault. At most :data:`KEEP_BYTES` are kept.
"""

from __future__ import annotations

import math
import mmap
import threading

import numpy as np

__all__ = ["KEEP_BYTES", "empty", "release"]

MIN_MAPPED_BYTES = 1 << 20
"""Smaller arrays come from numpy's allocator (no huge-page advice applies to them)."""
KEEP_BYTES = 1 << 30
"""Released mappings kept for reuse, in bytes, at most (the oldest go first)."""
REUSE_SLACK = 1.25
"""A kept mapping serves a request of at least 1 / REUSE_SLACK of its size."""

_lock = threading.Lock()
_kept: list[mmap.mmap] = []  # oldest first


def empty(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """An uninitialised C-contiguous array backed by its own anonymous mapping.

    A mapping handed back with :func:`release` is reused when its size fits.
    """
    dt = np.dtype(dtype)
    nbytes = math.prod(shape) * dt.itemsize
    if nbytes < MIN_MAPPED_BYTES or not hasattr(mmap, "MAP_ANONYMOUS"):
        return np.empty(shape, dtype=dt)
    buffer = _take(nbytes)
    if buffer is None:
        buffer = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(buffer, dtype=dt, count=math.prod(shape)).reshape(shape)


def release(array: np.ndarray | None) -> None:
    """Hand back an array from :func:`empty` that nothing uses any more.

    The caller must drop every reference to ``array`` and its views: the memory will
    back another array. Arrays that did not come from :func:`empty`'s mappings are
    ignored.
    """
    buffer = _mapping_of(array)
    if buffer is None:
        return
    if hasattr(mmap, "MADV_FREE"):
        buffer.madvise(mmap.MADV_FREE)
    with _lock:
        if any(kept is buffer for kept in _kept):
            return
        _kept.append(buffer)
        while sum(len(kept) for kept in _kept) > KEEP_BYTES:
            _kept.pop(0)  # unmapped once unreferenced


def _take(nbytes: int) -> mmap.mmap | None:
    """The smallest kept mapping that fits ``nbytes`` without wasting much, if any."""
    with _lock:
        fitting = [b for b in _kept if nbytes <= len(b) <= nbytes * REUSE_SLACK]
        if not fitting:
            return None
        best = min(fitting, key=len)
        _kept.remove(best)
        return best


def _mapping_of(array: np.ndarray | None) -> mmap.mmap | None:
    """The mapping behind an array from :func:`empty` (views included), else None."""
    base: object = array
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):  # np.frombuffer keeps the buffer in a memoryview
        base = base.obj
    return base if isinstance(base, mmap.mmap) else None
