"""The worker process: the daemon's poll loop, ``--once`` mode, signals and shutdown.

:class:`Worker` claims jobs and runs each in its own thread through a
:class:`~crowdsky.worker.job_processor.JobProcessor`, up to ``MAX_WORKERS`` at once.
A failed claim is retried with capped backoff, so the loop outlives a server outage.
SIGTERM / SIGINT stop claiming; running jobs get ``SHUTDOWN_TIMEOUT`` seconds, then
are handed back (``release_job``) for another worker. ``--once`` processes one job
and exits with one of :data:`EXIT_CODES`, so cron can tell "nothing to do" from
"something to fix". :func:`main` is ``python -m crowdsky.worker`` (options in
:mod:`crowdsky.worker.options`); ``crowdsky worker`` calls :func:`run`.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import structlog

from crowdsky.logs import configure_logging
from crowdsky.storage.result_store import ResultStore
from crowdsky.worker import completions, options, stacking_adapter
from crowdsky.worker.api_client import ApiClient, JobPayload
from crowdsky.worker.config import WorkerSettings, describe, load_worker_settings
from crowdsky.worker.errors import ApiAuthError, ApiUnavailable, ConfigError, LeaseLost
from crowdsky.worker.job_control import JobControl, JobOutcome
from crowdsky.worker.job_processor import (
    SHUTDOWN_MESSAGE,
    JobProcessor,
    build_api_client,
    build_result_store,
)

logger = structlog.get_logger(__name__)

EXIT_OK = 0
EXIT_NO_JOB = 1
EXIT_CONFIG = 2
EXIT_UNREACHABLE = 3
EXIT_AUTH = 4
EXIT_CODES = {
    EXIT_OK: "a job was processed (done, or reported failed)",
    EXIT_NO_JOB: "no job was available",
    EXIT_CONFIG: "invalid configuration, or API_BASE_URL is not a worker API",
    EXIT_UNREACHABLE: "the server could not be reached or answered with errors",
    EXIT_AUTH: "the server refused WORKER_API_KEY",
}
"""``--once`` exit codes and their meaning (shown by ``crowdsky worker --help``)."""
BUSY_WAIT_SECONDS = 1.0
MAX_POLL_BACKOFF_SECONDS = 60.0
HANDBACK_GRACE_SECONDS = 20.0
#: How often a daemon retries completions left over from an earlier run (seconds).
SAVED_COMPLETION_RETRY_SECONDS = 30.0
STALE_JOB_FOLDER_SECONDS = 24 * 3600.0


@dataclass
class _RunningJob:
    job: JobPayload
    control: JobControl
    thread: threading.Thread
    outcome: JobOutcome | None = None
    handed_back: bool = False
    started: float = field(default_factory=time.monotonic)

    @property
    def job_id(self) -> int:
        return int(self.job["job_id"])


class Worker:
    """One worker process: claims jobs and runs them in threads.

    Parameters
    ----------
    settings
        The validated configuration.
    api, store, processor
        Injected in tests; by default built from ``settings``.
    max_poll_backoff
        Ceiling of the wait between failed claims, seconds.
    """

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        api: ApiClient | None = None,
        store: ResultStore | None = None,
        processor: JobProcessor | None = None,
        max_poll_backoff: float = MAX_POLL_BACKOFF_SECONDS,
    ) -> None:
        self.settings = settings
        self.api = api or build_api_client(settings)
        self.store = store or build_result_store(settings, api=self.api)
        self.processor = processor or JobProcessor.from_settings(settings, self.api, self.store)
        self.max_poll_backoff = max_poll_backoff
        self.log = logger.bind(worker_id=settings.worker_id)
        self._stop = threading.Event()
        self._force = threading.Event()
        self._wakeup = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[int, _RunningJob] = {}
        self.outcomes: list[JobOutcome] = []

    # -- control ----------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop claiming; a second call also hands running jobs back at once."""
        if self._stop.is_set():
            self._force.set()
            self.log.warning("shutdown_forced")
        else:
            self.log.info("shutdown_requested", running_jobs=self.running_count())
        self._stop.set()
        self._wakeup.set()

    @property
    def stopping(self) -> bool:
        """True once a stop was requested."""
        return self._stop.is_set()

    def running_count(self) -> int:
        """Jobs currently being processed."""
        with self._lock:
            return sum(1 for rj in self._running.values() if rj.thread.is_alive())

    def close(self) -> None:
        """Close the HTTP clients."""
        self.store.close()
        self.api.close()

    # -- modes ------------------------------------------------------------------------

    def run_once(self) -> int:
        """Claim and process one job: 0 if one was processed, 1 if none was available,
        2, 3 or 4 if the server could not be asked (see :data:`EXIT_CODES`)."""
        with structlog.contextvars.bound_contextvars(worker_id=self.settings.worker_id):
            return self._run_once()

    def run_daemon(self) -> int:
        """Poll for jobs until stopped; returns 0 after a clean shutdown."""
        with structlog.contextvars.bound_contextvars(worker_id=self.settings.worker_id):
            self.processor.plate_solver.prepare()  # index files load before the first claim
            return self._run_daemon()

    def _run_once(self) -> int:
        self._prepare_work_dir()
        self._deliver_saved_completions()
        try:
            job = self.api.get_next_job()
        except Exception as exc:
            code, hint = poll_failure(exc, self.settings.api_base_url)
            self.log.error("poll_failed", error=str(exc), hint=hint, exit_code=code)
            return code
        if job is None:
            self.log.info("no_job_available")
            return EXIT_NO_JOB
        self._start(job)
        while self.running_count() and not self._stop.is_set():
            self._wakeup.wait(BUSY_WAIT_SECONDS)
            self._wakeup.clear()
        self._shutdown()
        return EXIT_OK

    def _run_daemon(self) -> int:
        self._prepare_work_dir()
        self.log.info("worker_started", **describe(self.settings))
        backoff = 0.0
        saved_left = self._deliver_saved_completions()
        next_delivery = time.monotonic() + SAVED_COMPLETION_RETRY_SECONDS
        while not self._stop.is_set():
            self._reap()
            if saved_left and time.monotonic() >= next_delivery:
                saved_left = self._deliver_saved_completions()
                next_delivery = time.monotonic() + SAVED_COMPLETION_RETRY_SECONDS
            if self.running_count() >= self.settings.max_workers:
                self._wakeup.wait(BUSY_WAIT_SECONDS)
                self._wakeup.clear()
                continue
            try:
                job = self.api.get_next_job()
            except Exception as exc:
                backoff = self._next_backoff(backoff)
                wait = random.uniform(backoff / 2, backoff)
                event = "poll_rejected" if isinstance(exc, ApiAuthError) else "poll_failed"
                _, hint = poll_failure(exc, self.settings.api_base_url)
                self.log.warning(event, error=str(exc), hint=hint, retry_in_seconds=round(wait, 2))
                self._stop.wait(wait)
                continue
            if backoff:
                self.log.info("server_reachable_again")
                backoff = 0.0
            if job is None:
                self._idle_wait()
                continue
            self._start(job)
        self._shutdown()
        self.log.info("worker_stopped", jobs_processed=len(self.outcomes))
        return EXIT_OK

    # -- internals --------------------------------------------------------------------

    def _next_backoff(self, backoff: float) -> float:
        first = min(self.settings.poll_interval, 2.0)
        return min(self.max_poll_backoff, backoff * 2 if backoff else first)

    def _idle_wait(self) -> None:
        """Sleep ``POLL_INTERVAL`` unless stopped (or, below capacity, a job finishing)."""
        self._stop.wait(self.settings.poll_interval)

    def _start(self, job: JobPayload) -> None:
        control = JobControl()
        job_id = int(job["job_id"])
        holder: dict[str, _RunningJob] = {}

        def target() -> None:
            try:
                holder["rj"].outcome = self.processor.process_job(job, control=control)
            except Exception as exc:  # process_job reports failures itself; belt and braces
                self.log.exception("job_thread_crashed", job_id=job_id, error=str(exc))
            finally:
                self._wakeup.set()

        thread = threading.Thread(target=target, name=f"job-{job_id}", daemon=True)
        running = _RunningJob(job, control, thread)
        holder["rj"] = running
        with self._lock:
            self._running[job_id] = running
        self.log.info("job_claimed", job_id=job_id, chunk_key=job.get("chunk_key"))
        thread.start()

    def _reap(self) -> None:
        with self._lock:
            finished = [rj for rj in self._running.values() if not rj.thread.is_alive()]
            for rj in finished:
                del self._running[rj.job_id]
        for rj in finished:
            if rj.outcome is not None:
                self.outcomes.append(rj.outcome)

    def _shutdown(self) -> None:
        with self._lock:
            running = [rj for rj in self._running.values() if rj.thread.is_alive()]
        if running:
            bound = 0.0 if self._force.is_set() else self.settings.shutdown_timeout
            self.log.info(
                "shutdown_waiting_for_jobs",
                job_ids=[rj.job_id for rj in running],
                timeout_seconds=bound,
            )
            deadline = time.monotonic() + bound
            for rj in running:
                while rj.thread.is_alive() and not self._force.is_set():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    rj.thread.join(min(remaining, 0.5))
            still = [rj for rj in running if rj.thread.is_alive()]
            for rj in still:
                rj.control.cancel("shutdown")
            grace_end = time.monotonic() + HANDBACK_GRACE_SECONDS
            for rj in still:
                rj.thread.join(max(0.0, grace_end - time.monotonic()))
            for rj in still:
                if rj.thread.is_alive():
                    # Stuck inside the engine: report for it; its late report will be refused.
                    self._hand_back(rj)
        self._reap()

    def _hand_back(self, rj: _RunningJob) -> None:
        rj.handed_back = True
        try:
            self.api.release_job(rj.job_id, SHUTDOWN_MESSAGE)
            self.log.warning("job_handed_back", job_id=rj.job_id)
        except LeaseLost:
            pass
        except Exception as exc:
            self.log.error("hand_back_failed", job_id=rj.job_id, error=str(exc))

    def _deliver_saved_completions(self) -> int:
        """Send completions an earlier run could not deliver; how many are still left."""
        outbox = completions.CompletionOutbox(self.settings.work_dir / completions.OUTBOX_FOLDER)
        return completions.deliver_saved(
            self.api,
            outbox,
            should_stop=self._stop.is_set,
            on_answer=self.processor.discard_replaced,
        )

    def _prepare_work_dir(self) -> None:
        work_dir = self.settings.work_dir
        try:
            work_dir.mkdir(parents=True, exist_ok=True)
            probe = work_dir / f".write-test-{threading.get_ident()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"WORK_DIR is not a writable folder: {work_dir} ({exc})") from exc
        now = time.time()
        for stale in work_dir.glob("job_*"):
            try:
                if now - stale.stat().st_mtime > STALE_JOB_FOLDER_SECONDS:
                    shutil.rmtree(stale, ignore_errors=True)
                    self.log.info("stale_job_folder_removed", path=str(stale))
            except OSError:
                continue


def poll_failure(exc: Exception, api_base_url: str) -> tuple[int, str]:
    """The ``--once`` exit code for a failed claim, and what to do about it."""
    status = getattr(exc, "status_code", None)
    if isinstance(exc, ApiAuthError):
        return EXIT_AUTH, (
            "the server refused WORKER_API_KEY: use the server's WORKER_API_KEY, or a "
            "token made on the server with `crowdsky worker-token create NAME`"
        )
    if status == 404:
        base = api_base_url.rstrip("/")
        if not base.endswith("/api"):
            return EXIT_CONFIG, f"API_BASE_URL must end in /api: set API_BASE_URL={base}/api"
        return EXIT_CONFIG, f"no CrowdSky worker API at {base}: check API_BASE_URL"
    if isinstance(exc, ApiUnavailable) or status is None or status >= 500:
        return EXIT_UNREACHABLE, (
            f"is the server running and reachable at {api_base_url}? "
            "(`crowdsky doctor` checks the configuration end to end)"
        )
    return EXIT_UNREACHABLE, "the server refused the claim; see the error above"


def run_once(settings: WorkerSettings | None = None) -> int:
    """The spec's ``run_once()``: claim and process one job (0), or find none (1).

    Other codes say why no job could be asked for (see :data:`EXIT_CODES`).
    """
    worker = Worker(settings or load_worker_settings())
    previous = _install_signal_handlers(worker)
    try:
        return worker.run_once()
    finally:
        _restore_signal_handlers(previous)
        worker.close()


def run_daemon(settings: WorkerSettings | None = None) -> int:
    """The spec's ``run_daemon()``: poll and process jobs until SIGTERM/SIGINT."""
    worker = Worker(settings or load_worker_settings())
    previous = _install_signal_handlers(worker)
    try:
        return worker.run_daemon()
    finally:
        _restore_signal_handlers(previous)
        worker.close()


def _restore_signal_handlers(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _install_signal_handlers(worker: Worker) -> dict[int, Any]:
    """SIGTERM/SIGINT -> :meth:`Worker.request_stop` (only possible in the main thread)."""
    previous: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous

    def handler(signum: int, frame: FrameType | None) -> None:
        worker.request_stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)
    return previous


def run(
    *,
    once: bool = False,
    env_file: Path | str | None = ".env",
    log_level: str | None = None,
    json_logs: bool | None = None,
    **overrides: Any,
) -> int:
    """Load settings, set up logging and signals, and run the worker.

    Parameters
    ----------
    once
        ``--once`` mode.
    env_file
        The dotenv file (``.env`` in the current folder by default).
    log_level, json_logs
        Logging overrides (``LOG_LEVEL``; JSON is the default when not on a TTY).
    **overrides
        Settings overrides from the command line (``worker_id``, ``max_workers``...).

    Returns
    -------
    int
        The process exit code.

    Raises
    ------
    ConfigError
        Invalid configuration; the caller prints it and exits with 2.
    """
    settings = load_worker_settings(env_file, **overrides)
    configure_logging(log_level or settings.log_level, json=json_logs)
    if once:
        return run_once(settings)  # the engine loads once a job is claimed (none: no cost)
    stacking_adapter.prepare_engine()  # a daemon loads it at start-up, before the first claim
    return run_daemon(settings)


def build_parser() -> argparse.ArgumentParser:
    """Options of ``python -m crowdsky.worker`` (the same as ``crowdsky worker``)."""
    parser = argparse.ArgumentParser(
        prog="python -m crowdsky.worker",
        description="CrowdSky stacking worker: claims jobs, stacks them, publishes results.",
        epilog="--once exit codes: "
        + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()),
    )
    options.add_to_parser(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m crowdsky.worker [--once]``; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return run(**options.run_keywords(args))
    except ConfigError as exc:
        sys.stderr.write(f"crowdsky worker: {exc}\n")
        return EXIT_CONFIG
