"""Compiling the engine's numba kernels: on-disk cache where possible, in memory otherwise.

numba refuses ``cache=True`` outright when neither the package folder nor a user
cache folder is writable (a read-only install under a hardened service unit with no
``NUMBA_CACHE_DIR``). The engine must still work there: it compiles in memory
instead, once per process (~1–2 s per kernel module), and says so. This module itself
imports numba only when a kernel is defined, so :func:`loaded` costs nothing.

Loading a kernel from the cache skips numba's context refresh (:func:`_load_cached`):
before loading, numba's ``FunctionCache.load_overload`` refreshes the typing and
target contexts, which imports and registers every typing and lowering registry
(~80 modules, ~0.07 s of GIL-bound Python on the first load of a process). A cached
kernel is machine code that needs none of them, only numba's runtime (NRT). When the
cache misses, numba compiles as usual, and its compiler refreshes the contexts itself.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, TypeVar, cast

__all__ = [
    "SAFE_FASTMATH",
    "compiled",
    "inlined",
    "loaded",
    "mark_ready",
    "skipping_blas_probe",
]

log = logging.getLogger(__name__)

Kernel = TypeVar("Kernel", bound=Callable[..., Any])

SAFE_FASTMATH = frozenset({"contract", "afn", "arcp", "reassoc", "nsz"})
"""Fast-math without ``nnan``/``ninf``: for kernels that read or write NaN on purpose."""


def compiled(
    *, fastmath: bool | frozenset[str] = False, error_model: str = "python"
) -> Callable[[Kernel], Kernel]:
    """``numba.njit(nogil=True)`` with the on-disk cache where one can be written.

    ``error_model="numpy"`` drops the division-by-zero check of every float division
    (numba raises ``ZeroDivisionError`` by default): the check's branch keeps a loop
    from vectorising, for kernels whose divisors cannot be zero.
    """
    import numba

    flags: bool | set[str] = set(fastmath) if isinstance(fastmath, frozenset) else fastmath
    options = {"nogil": True, "fastmath": flags, "error_model": error_model}

    def wrap(func: Kernel) -> Kernel:
        try:
            dispatcher = numba.njit(cache=True, **options)(func)
        except RuntimeError as exc:  # "cannot cache function ...: no locator available"
            log.warning("stack.no_kernel_cache: %s; compiling in memory", exc)
            return cast(Kernel, numba.njit(cache=False, **options)(func))
        cache = getattr(dispatcher, "_cache", None)
        if hasattr(cache, "_load_overload") and hasattr(cache, "_guard_against_spurious_io_errors"):
            cache.load_overload = functools.partial(_load_cached, cache)
        return cast(Kernel, dispatcher)

    return wrap


def _load_cached(cache: Any, sig: Any, target_context: Any) -> Any:
    """``FunctionCache.load_overload`` without the context refresh (module docstring):
    only the runtime the kernel's machine code calls into is initialised."""
    from numba.core.runtime import nrt

    nrt.rtsys.initialize(target_context)
    with cache._guard_against_spurious_io_errors():
        return cache._load_overload(sig, target_context)
    return None  # the guard swallowed an I/O error: numba compiles instead


def inlined(func: Kernel) -> Kernel:
    """A numba helper inlined into each kernel that calls it (so loops using it vectorise)."""
    import numba

    return cast(Kernel, numba.njit(inline="always")(func))


_ready_modules: set[str] = set()


def mark_ready(name: str) -> None:
    """Record that the kernels of ``crowdsky.stacking.<name>`` are loaded (its
    ``warm_up`` calls this last, once the module is fully imported)."""
    _ready_modules.add(name)


def loaded(name: str) -> ModuleType | None:
    """The kernel module ``crowdsky.stacking.<name>`` once :func:`mark_ready` said its
    kernels are loaded, else None. Imports, loads and compiles nothing (a module still
    being imported by the warm-up thread is not ready): callers use their numpy path
    meanwhile (the first stack of a process, while the warm-up thread loads numba)."""
    if name not in _ready_modules:
        return None
    return sys.modules.get(f"crowdsky.stacking.{name}")


BLAS_PROBE = "scipy.linalg.cython_blas"
_probe_lock = threading.Lock()


@contextlib.contextmanager
def skipping_blas_probe() -> Iterator[None]:
    """Run the first kernel load of the process without numba's BLAS probe.

    While numba initialises its compiler it imports ``numba.np.arraymath``, which
    tries ``import scipy.linalg.cython_blas`` to decide whether ``np.dot`` and
    friends can be compiled; importing SciPy's linear algebra costs ~0.6 s. None of
    the engine's kernels calls BLAS, so the probe is made to fail fast (a ``None``
    entry in ``sys.modules`` makes the import raise ``ImportError``) and numba
    records "no BLAS" for this process. When SciPy's linear algebra is already
    imported, nothing is hidden; the entry is removed on exit so later imports of
    SciPy work normally.
    """
    with _probe_lock:
        hide = BLAS_PROBE not in sys.modules
        if hide:
            sys.modules[BLAS_PROBE] = None  # type: ignore[assignment]
        try:
            yield
        finally:
            if hide and sys.modules.get(BLAS_PROBE, 0) is None:
                del sys.modules[BLAS_PROBE]
