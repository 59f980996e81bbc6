"""Login throttling: how many password attempts one account or one address may make.

Every password check costs an argon2 hash (CPU and 64 MiB), so free attempts turn the
server's hashing against it. Attempts are counted per login name and per address in
a window, reserved before the hash and given back on success; past a limit the answer
is ``429`` before any hashing, and unknown names count like known ones.
:class:`LoginThrottle` is the interface; :class:`MemoryLoginThrottle` counts in one
process, :class:`~crowdsky.accounts.db_throttle.DatabaseLoginThrottle` (the default)
in the database, shared by every server.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Protocol

#: Counters kept at most; past this the expired ones go, then the oldest.
MAX_TRACKED_KEYS = 100_000


class LoginThrottle(Protocol):
    """Counts password attempts per account and per address; says how long to wait.

    ``now`` is wall-clock epoch seconds (``time.time()``): the counters may be shared
    by processes on several hosts, which share no monotonic clock.
    """

    def acquire(self, account: str, address: str, now: float) -> float:
        """Count one attempt for ``account`` from ``address``; 0 if it may go ahead,
        else the seconds until it may (a refused attempt is not counted)."""
        ...

    def record_success(self, account: str, address: str, now: float) -> None:
        """A correct password: the account's count is forgotten and the address's
        attempt given back (an address is limited by its wrong passwords only)."""
        ...


@dataclass(slots=True)
class _Window:
    started: float
    failures: int


class MemoryLoginThrottle:
    """A fixed-window attempt counter per account and per address, in memory.

    Parameters
    ----------
    failures_per_account, failures_per_address
        Attempts allowed inside one window before that key is throttled.
    window_seconds
        Length of the counting window; a throttled key waits until its window ends.
    """

    def __init__(
        self, *, failures_per_account: int, failures_per_address: int, window_seconds: float
    ) -> None:
        self._limits = {"account": failures_per_account, "address": failures_per_address}
        self._window = window_seconds
        self._windows: dict[tuple[str, str], _Window] = {}
        self._lock = threading.Lock()

    def acquire(self, account: str, address: str, now: float) -> float:
        keys = (("address", address), ("account", account.lower()))
        with self._lock:
            wait = max(self._wait(key, now) for key in keys)
            if wait > 0:
                return wait
            if len(self._windows) >= MAX_TRACKED_KEYS:
                self._evict(now)
            for key in keys:
                window = self._windows.get(key)
                if window is None or now - window.started >= self._window:
                    self._windows[key] = _Window(started=now, failures=1)
                else:
                    window.failures += 1
        return 0.0

    def record_success(self, account: str, address: str, now: float) -> None:
        with self._lock:
            self._windows.pop(("account", account.lower()), None)
            window = self._windows.get(("address", address))
            if window is not None and window.failures > 0:
                window.failures -= 1

    def _wait(self, key: tuple[str, str], now: float) -> float:
        window = self._windows.get(key)
        if window is None:
            return 0.0
        remaining = window.started + self._window - now
        if remaining <= 0:
            del self._windows[key]
            return 0.0
        return remaining if window.failures >= self._limits[key[0]] else 0.0

    def _evict(self, now: float) -> None:
        expired = [k for k, w in self._windows.items() if now - w.started >= self._window]
        for key in expired:
            del self._windows[key]
        if len(self._windows) >= MAX_TRACKED_KEYS:
            oldest = sorted(self._windows, key=lambda k: self._windows[k].started)
            for key in oldest[: len(oldest) // 2]:
                del self._windows[key]


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
