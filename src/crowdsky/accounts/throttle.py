"""Login throttling: how many wrong passwords one account or one address may send.

Every password check costs argon2 (tens of milliseconds of CPU and 64 MiB), so an
attacker who can send them freely turns the server's own hashing against it. The
throttle counts failures per login name and per client address inside a window; once
either reaches its limit, further attempts are answered ``429`` with the time to wait,
before any hashing. Unknown login names are counted exactly like known ones, so the
answer never tells which accounts exist.

:class:`LoginThrottle` is the interface the server uses; :class:`MemoryLoginThrottle`
keeps the counters in the process (one server process, or one per address behind a
sticky balancer). A deployment with several server processes wants the counters in the
database: implement the three methods over a table and pass that instead.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Protocol

#: Counters kept at most; past this the expired ones go, then the oldest.
MAX_TRACKED_KEYS = 100_000


class LoginThrottle(Protocol):
    """Counts failed logins per account and per address; says how long to wait."""

    def retry_after(self, account: str, address: str, now: float) -> float:
        """Seconds until an attempt for ``account`` from ``address`` is allowed (0: now)."""
        ...

    def record_failure(self, account: str, address: str, now: float) -> None:
        """Count one wrong password (or unknown login) for both keys."""
        ...

    def record_success(self, account: str, address: str, now: float) -> None:
        """A correct password: the account's failures are forgotten (the address's stay)."""
        ...


@dataclass(slots=True)
class _Window:
    started: float
    failures: int


class MemoryLoginThrottle:
    """A fixed-window failure counter per account and per address, in memory.

    Parameters
    ----------
    failures_per_account, failures_per_address
        Failures allowed inside one window before that key is throttled.
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

    def retry_after(self, account: str, address: str, now: float) -> float:
        with self._lock:
            waits = [
                self._wait(("account", account.lower()), now),
                self._wait(("address", address), now),
            ]
        return max(waits)

    def record_failure(self, account: str, address: str, now: float) -> None:
        with self._lock:
            if len(self._windows) >= MAX_TRACKED_KEYS:
                self._evict(now)
            for key in (("account", account.lower()), ("address", address)):
                window = self._windows.get(key)
                if window is None or now - window.started >= self._window:
                    self._windows[key] = _Window(started=now, failures=1)
                else:
                    window.failures += 1

    def record_success(self, account: str, address: str, now: float) -> None:
        with self._lock:
            self._windows.pop(("account", account.lower()), None)

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
