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
single fault (for mappings of :data:`ASYNC_FREE_BYTES` or more the advice is given by a
background thread: ``mmap.madvise`` holds the GIL). At most :data:`KEEP_BYTES` are
kept, and :func:`trim` drops more: kept pages still count in the process's RSS until
the kernel takes them, so the engine trims the pool to its memory budget before a
stack.

A one-shot process (``crowdsky stack``) reuses nothing: :func:`discard_released`
switches the pool off and has a background thread return each released mapping's
pages to the kernel (``madvise(MADV_DONTNEED)`` through ctypes, which releases the
GIL) while the stack is still being catalogued and written. Otherwise the kernel
frees them when the process exits, and the parent waits for that: 60–110 ms for the
~700 MB a 15-frame stack touches.

Only a mapping on loan from :func:`empty` is taken back, once per loan. A stale second
release of an array whose mapping has since been handed to someone else must neither
queue the mapping twice (two owners of one memory) nor ``MADV_FREE`` the new owner's
live pages (they could read back as zeros).
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import queue
import threading
import weakref
from typing import Any

import numpy as np

__all__ = ["ASYNC_FREE_BYTES", "KEEP_BYTES", "discard_released", "empty", "release", "trim"]

MIN_MAPPED_BYTES = 1 << 20
"""Smaller arrays come from numpy's allocator (no huge-page advice applies to them)."""
KEEP_BYTES = 1 << 30
"""Released mappings kept for reuse, in bytes, at most (the oldest go first)."""
ASYNC_FREE_BYTES = 64 << 20
"""Released mappings this large are advised and kept by a background thread."""
REUSE_SLACK = 1.25
"""A kept mapping serves a request of at least 1 / REUSE_SLACK of its size."""

_lock = threading.Lock()
_kept: list[mmap.mmap] = []  # oldest first
_loans: weakref.WeakValueDictionary[int, np.ndarray] = weakref.WeakValueDictionary()
"""id(mapping) -> the array of its current loan, which all views of it lead back to.
Weak: an array dropped without release still frees its mapping (and while an entry
lives, its array holds the mapping, so the id cannot belong to another object)."""


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
    loan = np.frombuffer(buffer, dtype=dt, count=math.prod(shape))
    with _lock:
        _loans[id(buffer)] = loan
    return loan.reshape(shape)


def release(array: np.ndarray | None) -> None:
    """Hand back an array from :func:`empty` that nothing uses any more.

    The caller must drop every reference to ``array`` and its views: the memory will
    back another array. Anything but the current loan of a mapping (a second release,
    an array not from :func:`empty`, a file-backed ``np.memmap``) is ignored. A mapping
    larger than :data:`KEEP_BYTES` is not kept: it is unmapped once unreferenced.
    """
    buffer, loan = _loan_of(array)
    if buffer is None:
        return
    with _lock:
        if _loans.get(id(buffer)) is not loan:
            return
        del _loans[id(buffer)]
    if _discarding.is_set():
        _discards.put((buffer, loan))  # the thread keeps the mapping alive until done
        return
    if len(buffer) > KEEP_BYTES:
        return
    if len(buffer) >= ASYNC_FREE_BYTES:
        global _pending
        _start_free_thread()
        with _settled:
            _pending += 1
        _frees.put(buffer)  # MADV_FREE off the caller's thread, then back in the pool
        return
    _keep(buffer)


def _free_forever() -> None:
    """Mark large released mappings ``MADV_FREE`` and keep them for reuse.

    ``mmap.madvise`` holds the GIL, ~2 ms for a 373 MB frame store: done here, it
    overlaps the rest of the stack instead of delaying it. A mapping is in the pool
    only after its advice, so no new owner's pages can be affected; small ones are
    kept at once (a loop that releases and takes scratch buffers reuses them).
    """
    global _pending
    while True:
        buffer = _frees.get()
        if not _discarding.is_set():  # else unmapped here, once unreferenced
            _keep(buffer)
        del buffer
        with _settled:
            _pending -= 1
            _settled.notify_all()


def _keep(buffer: mmap.mmap) -> None:
    # The constant may exist while the kernel refuses it (EINVAL); the mapping is kept
    # all the same, its pages resident. Nothing may escape from callers' finally blocks.
    with contextlib.suppress(AttributeError, OSError):
        buffer.madvise(mmap.MADV_FREE)
    with _lock:
        _kept.append(buffer)
    _trim(KEEP_BYTES)


_frees: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
_settled = threading.Condition()
_pending = 0  # large releases not yet advised and kept
SETTLE_TIMEOUT_S = 10.0
_free_thread_pid: int | None = None  # the process whose thread serves _frees


def _start_free_thread() -> None:
    """Start the thread that keeps large releases, once per process (a forked child
    has no thread of its parent's: it starts its own)."""
    global _free_thread_pid
    with _settled:
        if _free_thread_pid == os.getpid():
            return
        _free_thread_pid = os.getpid()
    threading.Thread(target=_free_forever, name="crowdsky-free", daemon=True).start()


def _forget_parent_threads() -> None:
    """In a forked child: the parent's queues, counts and threads are not ours."""
    global _frees, _settled, _pending, _free_thread_pid, _discards
    _frees, _discards = queue.SimpleQueue(), queue.SimpleQueue()
    _settled, _pending, _free_thread_pid = threading.Condition(), 0, None
    _discarding.clear()


_discarding = threading.Event()
_discards: queue.SimpleQueue[tuple[mmap.mmap, np.ndarray]] = queue.SimpleQueue()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent_threads)


def discard_released() -> None:
    """Keep nothing for reuse from now on: every released mapping's pages go back to
    the kernel at once, in a background thread (module docstring). For processes
    that stack once; cannot be undone."""
    with _lock:
        if _discarding.is_set():
            return
        _discarding.set()
        threading.Thread(target=_discard_forever, name="crowdsky-discard", daemon=True).start()
    trim(0)


def _discard_forever() -> None:
    madvise = _libc_madvise()
    while True:
        buffer, loan = _discards.get()
        if madvise is not None:
            madvise(loan.__array_interface__["data"][0], len(buffer), mmap.MADV_DONTNEED)
        del buffer, loan  # unmapped once the caller's references are gone too


def _libc_madvise() -> Any:
    """libc's ``madvise`` through ctypes (the call releases the GIL), or None."""
    import ctypes

    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (AttributeError, OSError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise if hasattr(mmap, "MADV_DONTNEED") else None


def trim(max_bytes: int) -> None:
    """Drop the oldest kept mappings until at most ``max_bytes`` remain kept.

    The engine calls this at the start of a stack with its memory budget: kept pages
    count in RSS until the kernel reclaims them, outside what the stack accounts for.
    ``trim(0)`` unmaps every kept mapping. Releases still being advised in the
    background are waited for first, so the pool is settled afterwards.
    """
    with _settled:
        _settled.wait_for(lambda: _pending == 0, timeout=SETTLE_TIMEOUT_S)
    _trim(max_bytes)


def _trim(max_bytes: int) -> None:
    with _lock:
        while _kept and sum(len(kept) for kept in _kept) > max_bytes:
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


def _loan_of(array: np.ndarray | None) -> tuple[mmap.mmap | None, np.ndarray | None]:
    """The anonymous mapping behind an array (views included) and the array that wraps
    it, else None for both. (A file-backed ``np.memmap`` has the mmap as its base, not
    the memoryview ``np.frombuffer`` makes, and is not one of ours.)"""
    root, base = None, array
    while isinstance(base, np.ndarray):
        root, base = base, base.base
    if isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap):
        return base.obj, root
    return None, None


def _mapping_of(array: np.ndarray | None) -> mmap.mmap | None:
    """The mapping behind an array from :func:`empty` (views included), else None."""
    return _loan_of(array)[0]
