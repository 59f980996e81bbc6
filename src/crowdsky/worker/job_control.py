"""A running job's controls: cancellation, steps and timings, progress and the heartbeat.

:class:`JobControl` lets the daemon cancel a job (shutdown) and the heartbeat abort
it (lease lost); :class:`JobRun` names, times and logs the pipeline's steps and stops
the job between them once it is cancelled; :class:`HeartbeatThread` renews the lease
for the whole job and carries the progress :class:`JobProgress` computes.
:class:`JobOutcome` is what :mod:`crowdsky.worker.job_processor` returns.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from crowdsky.worker.api_client import ApiClient
from crowdsky.worker.errors import JobAborted, LeaseLost, WorkerError

DEFAULT_HEARTBEAT_SECONDS = 30.0
MAX_HEARTBEAT_SECONDS = 60.0
MIN_HEARTBEAT_SECONDS = 0.1
PROGRESS_LOG_STEP = 0.25

# Where each step sits on the job's 0..1 progress scale (heartbeats, logs).
PROGRESS_SPAN = {
    "download": (0.0, 0.30),
    "stack": (0.30, 0.88),
    "thumbnail": (0.88, 0.90),
    "upload": (0.90, 0.99),
    "report": (0.99, 1.0),
}

OutcomeStatus = Literal["completed", "failed", "aborted"]


class JobControl:
    """A job's cancellation switch, shared by the processor, its heartbeat and the daemon.

    ``cancel("lease_lost")`` comes from the heartbeat when the server took the job
    back; ``cancel("shutdown")`` from the daemon when its shutdown bound ran out.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    def cancel(self, reason: str) -> None:
        """Ask the job to stop at its next check point (the first reason wins)."""
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`JobAborted` if the job was cancelled."""
        if self._event.is_set():
            raise JobAborted(f"job aborted ({self.reason})", reason=self.reason or "aborted")


@dataclass
class JobTimings:
    """Wall time per step, seconds, and bytes moved; logged and returned for benchmarks."""

    download_s: float = 0.0
    stack_s: float = 0.0
    solve_s: float = 0.0
    thumbnail_s: float = 0.0
    upload_s: float = 0.0
    report_s: float = 0.0
    total_s: float = 0.0
    bytes_downloaded: int = 0
    bytes_uploaded: int = 0

    def as_dict(self) -> dict[str, float]:
        """Rounded figures for logs."""
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in vars(self).items()}


@dataclass(frozen=True)
class JobOutcome:
    """What happened to one job.

    ``status`` is ``completed`` (reported complete), ``failed`` (reported with
    ``fail_job``; ``server_status`` says ``retry`` or ``failed``) or ``aborted``
    (lease lost or handed back on shutdown).
    """

    job_id: int
    status: OutcomeStatus
    message: str | None = None
    server_status: str | None = None
    metadata: dict[str, Any] | None = None
    timings: JobTimings = field(default_factory=JobTimings)


class JobProgress:
    """The job's current step and fraction, read by the heartbeat thread."""

    def __init__(self, log: Any) -> None:
        self._lock = threading.Lock()
        self.fraction = 0.0
        self.message = "starting"
        self._log = log
        self._last_logged = -1.0

    def set(self, step: str, within: float, message: str) -> None:
        """Record that ``step`` is ``within`` (0..1) done; logs every quarter of the job."""
        lo, hi = PROGRESS_SPAN[step]
        value = lo + (hi - lo) * min(1.0, max(0.0, within))
        with self._lock:
            self.fraction = max(self.fraction, value)
            self.message = message
            should_log = self.fraction - self._last_logged >= PROGRESS_LOG_STEP or within >= 1.0
            if should_log:
                self._last_logged = self.fraction
        if should_log:
            self._log.info("job_progress", step=step, progress=round(value, 3), detail=message)

    def snapshot(self) -> tuple[float, str]:
        """The job's fraction done and the latest message, as one consistent pair."""
        with self._lock:
            return self.fraction, self.message


class HeartbeatThread(threading.Thread):
    """Extends the lease every ``interval`` seconds until stopped; cancels on 409."""

    def __init__(
        self,
        api: ApiClient,
        job_id: int,
        interval: float,
        progress: JobProgress,
        control: JobControl,
        log: Any,
    ) -> None:
        super().__init__(name=f"heartbeat-{job_id}", daemon=True)
        self._api = api
        self._job_id = job_id
        self._interval = interval
        self._progress = progress
        self._control = control
        self._log = log
        self._halt = threading.Event()
        # Threads start with an empty context: carry the job's ids over for retry logs.
        self._context = structlog.contextvars.get_contextvars()

    def run(self) -> None:
        with structlog.contextvars.bound_contextvars(**self._context):
            self._beat()

    def _beat(self) -> None:
        while not self._halt.wait(self._interval):
            fraction, message = self._progress.snapshot()
            try:
                self._api.heartbeat(self._job_id, progress=fraction, message=message)
            except LeaseLost as exc:
                self._log.warning("lease_lost", error=str(exc))
                self._control.cancel("lease_lost")
                return
            except WorkerError as exc:
                # The server may be briefly away; the lease outlives a few missed beats.
                self._log.warning("heartbeat_failed", error=str(exc))
            except Exception as exc:  # never let the heartbeat thread die silently
                self._log.exception("heartbeat_error", error=str(exc))

    def stop(self) -> None:
        """Stop beating and wait for the thread (not from the thread itself)."""
        self._halt.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=self._interval + 35.0)


class JobRun:
    """One job's bookkeeping while it runs: its current step, timings and progress.

    Each pipeline step runs inside :meth:`step`, which names it (a failure message
    says which step failed), times it, logs its closing event and, at its end, stops
    the job if it was cancelled meanwhile.
    """

    def __init__(self, job_id: int, control: JobControl, log: Any) -> None:
        self.job_id = job_id
        self.control = control
        self.log = log
        self.timings = JobTimings()
        self.progress = JobProgress(log)
        self.current_step = "prepare"
        self._started = time.perf_counter()

    def elapsed_s(self) -> float:
        """Seconds since the job started."""
        return time.perf_counter() - self._started

    @contextlib.contextmanager
    def step(
        self, name: str, *, timing: str | None = None, event: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Run one step of the job.

        Parameters
        ----------
        name
            The step's name in failure messages ("download failed: ...").
        timing
            The :class:`JobTimings` field that receives the step's wall time, seconds.
        event
            Logged when the step succeeds, with the fields the body put into the
            yielded dict and ``seconds``.

        Raises
        ------
        JobAborted
            The job was cancelled while the step ran (checked once it ended).
        """
        self.current_step = name
        fields: dict[str, Any] = {}
        started = time.perf_counter()
        yield fields
        seconds = time.perf_counter() - started
        if timing is not None:
            setattr(self.timings, timing, seconds)
        if event is not None:
            self.log.info(event, **fields, seconds=round(seconds, 3))
        self.control.check()
