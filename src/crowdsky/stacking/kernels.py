"""Compiling the engine's numba kernels: on-disk cache where possible, in memory otherwise.

numba refuses ``cache=True`` outright when neither the package folder nor a user
cache folder is writable (a read-only install under a hardened service unit with no
``NUMBA_CACHE_DIR``). The engine must still work there: it compiles in memory
instead, once per process (~1–2 s per kernel module), and says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

__all__ = ["SAFE_FASTMATH", "compiled", "inlined"]

log = logging.getLogger(__name__)

Kernel = TypeVar("Kernel", bound=Callable[..., Any])

SAFE_FASTMATH = frozenset({"contract", "afn", "arcp", "reassoc", "nsz"})
"""Fast-math without ``nnan``/``ninf``: for kernels that read or write NaN on purpose."""


def compiled(*, fastmath: bool | frozenset[str] = False) -> Callable[[Kernel], Kernel]:
    """``numba.njit(nogil=True)`` with the on-disk cache where one can be written."""
    flags: bool | set[str] = set(fastmath) if isinstance(fastmath, frozenset) else fastmath

    def wrap(func: Kernel) -> Kernel:
        try:
            return cast(Kernel, numba.njit(cache=True, nogil=True, fastmath=flags)(func))
        except RuntimeError as exc:  # "cannot cache function ...: no locator available"
            log.warning("stack.no_kernel_cache: %s; compiling in memory", exc)
            return cast(Kernel, numba.njit(cache=False, nogil=True, fastmath=flags)(func))

    return wrap


def inlined(func: Kernel) -> Kernel:
    """A numba helper inlined into each kernel that calls it (so loops using it vectorise)."""
    return cast(Kernel, numba.njit(inline="always")(func))
