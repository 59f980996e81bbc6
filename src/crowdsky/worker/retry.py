"""The worker's one retry policy for HTTP calls: capped exponential backoff with full jitter.

Both HTTP clients (:mod:`crowdsky.worker.api_client`, :mod:`crowdsky.worker.webdav`)
route every request through :meth:`RetryPolicy.call`, so what counts as transient
(connection errors, timeouts, 5xx except the permanent ones, 429) is decided in one
place. Jitter keeps a fleet of workers from hammering a recovering server in step.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")

DEFAULT_ATTEMPTS = 4
DEFAULT_BASE_DELAY_SECONDS = 0.5
DEFAULT_MAX_DELAY_SECONDS = 30.0

# 5xx answers that will not heal within seconds: retrying only delays the failure report.
# 507 Insufficient Storage (a full share) is the one seen in practice.
PERMANENT_SERVER_ERRORS = frozenset({501, 505, 507, 508})


#: Transport failures that happen before the request reaches the server.
NOT_SENT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)


class RetryableStatus(Exception):
    """An HTTP answer that is worth retrying (5xx, 429); carries the response."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def is_retryable_status(status_code: int) -> bool:
    """True for 429 and for 5xx answers other than the permanent ones."""
    if status_code == 429:
        return True
    return 500 <= status_code < 600 and status_code not in PERMANENT_SERVER_ERRORS


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a transient HTTP failure.

    Parameters
    ----------
    attempts
        Total tries including the first (1 disables retrying).
    base_delay_seconds, max_delay_seconds
        Delay before retry *n* is uniform in ``[0, min(max, base * 2**n)]``; a
        ``Retry-After`` header (seconds) raises the lower bound.
    sleep
        Injected so tests run without waiting.
    """

    attempts: int = DEFAULT_ATTEMPTS
    base_delay_seconds: float = DEFAULT_BASE_DELAY_SECONDS
    max_delay_seconds: float = DEFAULT_MAX_DELAY_SECONDS
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)

    def delay(self, retry_number: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry_number`` (0-based)."""
        cap = min(self.max_delay_seconds, self.base_delay_seconds * (2**retry_number))
        wait = random.uniform(0.0, cap)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay_seconds))
        return wait

    def call(self, operation: Callable[[], T], *, what: str, idempotent: bool = True) -> T:
        """Run ``operation`` and retry it on transient failures.

        ``operation`` raises :class:`RetryableStatus` for a retryable answer and
        lets httpx transport errors propagate; everything else is final. After the
        last attempt the last exception propagates unchanged, for the caller to
        translate into its own error.

        With ``idempotent=False`` (claiming a job) only failures where the request
        cannot have reached the server (connect errors and timeouts, pool timeouts)
        or where the server said it did nothing (5xx, 429) are retried: after a read
        timeout the server may have acted, and repeating would act twice.
        """
        for attempt in range(self.attempts):
            try:
                return operation()
            except (httpx.TransportError, RetryableStatus) as exc:
                if attempt + 1 >= self.attempts:
                    raise
                if not idempotent and not isinstance(exc, (RetryableStatus, *NOT_SENT_ERRORS)):
                    raise
                retry_after = None
                if isinstance(exc, RetryableStatus):
                    retry_after = _retry_after_seconds(exc.response)
                wait = self.delay(attempt, retry_after)
                log.warning(
                    "http_retry",
                    what=what,
                    attempt=attempt + 1,
                    error=describe_http_error(exc),
                    wait_seconds=round(wait, 2),
                )
                self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def describe_http_error(exc: BaseException) -> str:
    """A short human description of an httpx failure, without URLs' credentials."""
    if isinstance(exc, RetryableStatus):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, httpx.TimeoutException):
        return f"timeout ({type(exc).__name__})"
    if isinstance(exc, httpx.ConnectError):
        return f"connection failed ({exc})"
    if isinstance(exc, httpx.TransportError):
        return f"{type(exc).__name__}: {exc}"
    return str(exc)
