"""One job from claim to report: the seven steps of ``worker-reference.md``.

:meth:`JobProcessor.process_job` lists the job's files, downloads them (in parallel,
checked), stacks them (or normalises an uploaded stack), solves the stack, draws the
thumbnail (a failure there is only a warning), publishes both under deterministic
names and reports ``complete_job``; the job folder goes whatever happened. Each step
runs in :meth:`~crowdsky.worker.job_control.JobRun.step`, a heartbeat keeps the lease
meanwhile, and a lost lease abandons the job unreported. It never raises for a job
failure: it reports ``fail_job`` naming the step and returns a :class:`JobOutcome`.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from crowdsky.storage.result_paths import ResultPaths, result_paths, safe_segment
from crowdsky.storage.result_store import LocalResultStore, ResultStore
from crowdsky.worker import (
    completions,
    plate_solving,
    postprocess,
    replaced_results,
    stacking_adapter,
    thumbnail,
)
from crowdsky.worker.api_client import ApiClient, JobFile, JobPayload
from crowdsky.worker.config import WorkerSettings
from crowdsky.worker.errors import (
    JobAborted,
    LeaseLost,
    StackingFailed,
    StorageError,
    WorkerError,
)
from crowdsky.worker.job_control import (
    DEFAULT_HEARTBEAT_SECONDS,
    MAX_HEARTBEAT_SECONDS,
    MIN_HEARTBEAT_SECONDS,
    HeartbeatThread,
    JobControl,
    JobOutcome,
    JobRun,
)
from crowdsky.worker.stacking_adapter import Stacker, StackOutcome

logger = structlog.get_logger(__name__)

Thumbnailer = Callable[[Path, Path], Path]
SHUTDOWN_MESSAGE = "worker shutting down: job handed back for another worker"
COMPLETION_KEPT = "stack published; its completion is kept on disk and sent at the next start"
#: The lease a server that does not say (the original) gives a claim, seconds.
DEFAULT_LEASE_SECONDS = 600.0
NO_FILES_MESSAGE = "No raw files found for this job."


@dataclass(frozen=True, kw_only=True)
class ProcessorOptions:
    """How a :class:`JobProcessor` runs its jobs (from ``WorkerSettings`` in production).

    Parameters
    ----------
    work_dir
        Absolute scratch folder; each job uses ``job_<id>/`` inside it.
    base_path
        ``UCLOUD_BASE_PATH``: the results' root folder in the store.
    worker_id
        Bound into every log event.
    download_concurrency
        Parallel raw downloads per job.
    heartbeat_interval
        Seconds between heartbeats; default a third of the job's lease, at most 60 s.
    verify_raws
        Check each raw's FITS header and size before stacking.
    """

    work_dir: Path
    base_path: str = "/crowdsky"
    worker_id: str = "worker-01"
    download_concurrency: int = 4
    heartbeat_interval: float | None = None
    verify_raws: bool = True

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> ProcessorOptions:
        """The options of ``WORK_DIR``, ``UCLOUD_BASE_PATH``, ``WORKER_ID`` and friends."""
        return cls(
            work_dir=settings.work_dir,
            base_path=settings.ucloud_base_path,
            worker_id=settings.worker_id,
            download_concurrency=settings.download_concurrency,
            heartbeat_interval=settings.heartbeat_interval,
        )


class JobProcessor:
    """Runs claimed jobs with one API client and one result store (both thread-safe).

    Parameters
    ----------
    api, store
        Server API and where results are published.
    options
        Scratch folder, result root, worker id, download and heartbeat settings.
    stacker, thumbnailer, plate_solver
        The stacking, thumbnail and plate-solving steps; tests inject fakes.
    """

    def __init__(
        self,
        api: ApiClient,
        store: ResultStore,
        options: ProcessorOptions,
        *,
        stacker: Stacker | None = None,
        thumbnailer: Thumbnailer | None = None,
        plate_solver: plate_solving.StackPlateSolver | None = None,
    ) -> None:
        self.api = api
        self.store = store
        self.options = options
        self.work_dir = Path(options.work_dir)
        self.stacker: Stacker = stacker or stacking_adapter.stack_files
        # Only the built-in engine has compiled kernels to load (while the first raws
        # download); an injected stacker has nothing to warm up.
        self.warms_up_engine = stacker is None
        self.thumbnailer: Thumbnailer = thumbnailer or thumbnail.generate_thumbnail
        self.plate_solver = plate_solver or plate_solving.StackPlateSolver()

    @classmethod
    def from_settings(
        cls, settings: WorkerSettings, api: ApiClient, store: ResultStore, **steps: Any
    ) -> JobProcessor:
        """A processor configured from the settings; ``steps`` as in the constructor."""
        return cls(api, store, ProcessorOptions.from_settings(settings), **steps)

    def heartbeat_seconds(self, job: JobPayload) -> float:
        """The heartbeat period for a job: configured, or a third of its lease."""
        if self.options.heartbeat_interval is not None:
            return max(MIN_HEARTBEAT_SECONDS, self.options.heartbeat_interval)
        lease = job.get("lease_seconds")
        if not lease:
            return DEFAULT_HEARTBEAT_SECONDS
        return min(MAX_HEARTBEAT_SECONDS, max(MIN_HEARTBEAT_SECONDS, float(lease) / 3.0))

    # -- the pipeline -----------------------------------------------------------------

    def process_job(self, job: JobPayload, *, control: JobControl | None = None) -> JobOutcome:
        """Run the seven steps for a claimed job and report the result to the server.

        Parameters
        ----------
        job
            The claim as returned by :meth:`ApiClient.get_next_job`.
        control
            Lets the caller (the daemon on shutdown) cancel the job.

        Returns
        -------
        JobOutcome
            Never raises for a job failure; the outcome says what happened.
        """
        control = control or JobControl()
        if self.warms_up_engine:
            stacking_adapter.prepare_engine()  # loads while the raws download (once)
        self.plate_solver.prepare()
        worker_id = self.options.worker_id
        with structlog.contextvars.bound_contextvars(
            job_id=int(job["job_id"]), worker_id=worker_id, chunk_key=job.get("chunk_key")
        ):
            return self._process(job, control)

    def _process(self, job: JobPayload, control: JobControl) -> JobOutcome:
        """Run the steps with a heartbeat; turn any failure into an outcome."""
        job_id = int(job["job_id"])
        log = logger.bind(
            job_id=job_id, worker_id=self.options.worker_id, chunk_key=job.get("chunk_key")
        )
        run = JobRun(job_id, control, log)
        job_dir = self.work_dir / f"job_{job_id}"
        heartbeat = HeartbeatThread(
            self.api, job_id, self.heartbeat_seconds(job), run.progress, control, log
        )
        log.info(
            "job_started",
            object_name=job.get("object_name"),
            frame_count=job.get("frame_count"),
            user_id=job.get("user_id"),
        )
        self.api.remember_lease(job_id, job.get("lease_token"))
        heartbeat.start()
        try:
            return self._run_steps(job, job_dir, run, heartbeat)
        except BaseException as exc:
            heartbeat.stop()
            run.timings.total_s = run.elapsed_s()
            if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit
                self._hand_back(job_id, log)
                raise
            return self._handle_failure(run, exc)
        finally:
            heartbeat.stop()
            shutil.rmtree(job_dir, ignore_errors=True)

    def _run_steps(
        self, job: JobPayload, job_dir: Path, run: JobRun, heartbeat: HeartbeatThread
    ) -> JobOutcome:
        """Steps 1 to 6; raises on failure (the step is ``run.current_step``)."""
        # A worker killed mid-job leaves its folder behind; start clean.
        shutil.rmtree(job_dir, ignore_errors=True)
        raw_dir = job_dir / "raws"
        raw_dir.mkdir(parents=True)

        with run.step("list files"):
            files = self.api.get_job_files(run.job_id)["files"]
            if not files:
                raise WorkerError(NO_FILES_MESSAGE)

        with run.step("download", timing="download_s", event="downloads_done") as done:
            raw_paths = self._download_all(files, raw_dir, run)
            done.update(n_files=len(raw_paths), bytes=run.timings.bytes_downloaded)

        with run.step("stacking", timing="stack_s", event="stack_done") as done:
            paths = self._result_paths(job)
            stack_path = job_dir / Path(paths.fits).name
            result = self._stack(job, raw_paths, stack_path, run)
            done.update(_stack_summary(result))

        with run.step("plate solve"):  # never fails the job: an unsolved stack says why
            solved = self.plate_solver.solve(stack_path, run.log)
            run.timings.solve_s = solved.seconds

        with run.step("thumbnail", timing="thumbnail_s"):
            thumb_path = self._thumbnail(stack_path, job_dir / Path(paths.thumbnail).name, run.log)
            run.progress.set("thumbnail", 1.0, "thumbnail done")

        with run.step("upload", timing="upload_s", event="upload_done") as done:
            prepare = getattr(self.store, "prepare_job", None)
            if prepare is not None:  # presigned: the server names the paths and signs them
                paths = prepare(run.job_id)
            size = self._publish(stack_path, thumb_path, paths, run)
            run.timings.bytes_uploaded += self.plate_solver.publish(self.store, solved, paths.fits)
            done.update(
                store=self.store.describe(),
                ucloud_path=paths.fits,
                bytes=run.timings.bytes_uploaded,
            )

        # Not a step(): once the completion is delivered, a cancellation must not turn
        # the job into a failure.
        run.current_step = "report"
        metadata = stacking_adapter.build_metadata(
            result,
            ucloud_path=paths.fits,
            thumbnail_path=paths.thumbnail if thumb_path is not None else None,
            file_size_bytes=size,
        )
        metadata.update(solved.metadata)  # optional fields: older servers ignore them
        return self._report(job, result, metadata, run, heartbeat)

    def _result_paths(self, job: JobPayload) -> ResultPaths:
        """Where the job's stack and thumbnail go in the store (deterministic: a retried
        job overwrites its earlier upload)."""
        return result_paths(
            self.options.base_path,
            int(job["user_id"]),
            job.get("object_name"),
            str(job["chunk_key"]),
            int(job["job_id"]),
        )

    def _report(
        self,
        job: JobPayload,
        result: StackOutcome,
        metadata: dict[str, Any],
        run: JobRun,
        heartbeat: HeartbeatThread,
    ) -> JobOutcome:
        """Step 6: deliver the completion (kept on disk when the server cannot take it)."""
        started = time.perf_counter()
        # the stack is published: deliver it whatever happens (the heartbeat keeps
        # the lease meanwhile); what cannot be delivered now is kept on disk
        delivery = self._deliver_completion(job, metadata, run.control)
        heartbeat.stop()
        if delivery == "kept":
            run.log.warning("job_completion_kept", folder=str(self.completions.folder))
            return JobOutcome(run.job_id, "aborted", message=COMPLETION_KEPT, timings=run.timings)
        run.timings.report_s = time.perf_counter() - started
        run.timings.total_s = run.elapsed_s()
        run.log.info("job_completed", **run.timings.as_dict(), n_frames_aligned=result.n_aligned)
        return JobOutcome(run.job_id, "completed", metadata=metadata, timings=run.timings)

    # -- steps ------------------------------------------------------------------------

    @property
    def completions(self) -> completions.CompletionOutbox:
        """Where completions wait until the server has them (``WORK_DIR/completions``)."""
        return completions.CompletionOutbox(self.work_dir / completions.OUTBOX_FOLDER)

    def _deliver_completion(
        self, job: JobPayload, metadata: dict[str, Any], control: JobControl
    ) -> completions.Delivery:
        job_id = int(job["job_id"])
        lease_s = float(job.get("lease_seconds") or DEFAULT_LEASE_SECONDS)
        pending = completions.PendingCompletion(
            job_id, dict(metadata), self.api.lease_token(job_id), time.time()
        )
        self.completions.save(job_id, pending.metadata, pending.lease_token)
        return completions.deliver(
            self.api,
            self.completions,
            pending,
            deadline=time.monotonic() + lease_s - self.heartbeat_seconds(job),
            should_stop=control.is_cancelled,
            on_answer=self.discard_replaced,
        )

    def discard_replaced(self, answer: dict[str, Any]) -> int:
        """Delete from the result store the files of the stacks a completion replaced."""
        return replaced_results.discard_replaced(self.store, self.options.base_path, answer)

    def _download_all(self, files: list[JobFile], raw_dir: Path, run: JobRun) -> list[Path]:
        """Step 2: the raws, in parallel; the first failure stops the other downloads."""
        control, progress, timings = run.control, run.progress, run.timings
        targets = _local_names(files, raw_dir)
        expected_total = sum(_int_or_none(f.get("file_size_bytes")) or 0 for f in files)
        lock = threading.Lock()
        failed = threading.Event()
        done_files = [0]

        def on_bytes(n: int) -> None:
            with lock:
                timings.bytes_downloaded += n
                got = timings.bytes_downloaded
            if expected_total:
                progress.set(
                    "download", got / expected_total, f"downloaded {done_files[0]}/{len(files)}"
                )

        def stop_requested() -> bool:
            return failed.is_set() or control.is_cancelled()

        context = structlog.contextvars.get_contextvars()

        def fetch(entry: JobFile, target: Path) -> Path:
            with structlog.contextvars.bound_contextvars(**context):
                return fetch_one(entry, target)

        def fetch_one(entry: JobFile, target: Path) -> Path:
            control.check()
            if failed.is_set():
                raise JobAborted("another download failed", reason="download_failed")
            file_id = int(entry["id"])
            self.api.download_raw_file(
                file_id,
                target,
                expected_size=_int_or_none(entry.get("file_size_bytes")),
                on_bytes=on_bytes,
                should_stop=stop_requested,
            )
            if self.options.verify_raws:
                stacking_adapter.verify_raw_file(target)
            with lock:
                done_files[0] += 1
            return target

        workers = min(max(1, self.options.download_concurrency), len(files))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="download") as pool:
            futures = [
                pool.submit(fetch, entry, target)
                for entry, target in zip(files, targets, strict=True)
            ]
            finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
            errors = [e for e in (f.exception() for f in finished) if e is not None]
            if errors:
                failed.set()
                wait(futures)
                real = [e for e in errors if not _is_sibling_abort(e)]
                raise (real or errors)[0]
        progress.set("download", 1.0, f"downloaded {len(files)}/{len(files)}")
        return targets

    def _stack(
        self, job: JobPayload, raw_paths: list[Path], stack_path: Path, run: JobRun
    ) -> StackOutcome:
        """Step 3: the engine's stack, or the normalised upload of a ready-made stack."""
        if job.get("kind") == postprocess.KIND:  # a stack uploaded ready-made
            return postprocess.normalise_stack(raw_paths, stack_path)
        control, progress = run.control, run.progress

        def on_progress(fraction: float, message: str) -> None:
            control.check()  # raising here stops the engine at its next event
            progress.set("stack", fraction, message)

        result = self.stacker(raw_paths, stack_path, "mean", 3.0, progress=on_progress)
        if not Path(result.output_path).is_file():
            raise StackingFailed(f"stacking failed: the engine wrote no file at {stack_path.name}")
        progress.set("stack", 1.0, f"stacked {result.n_aligned}/{result.n_frames_input}")
        return result

    def _thumbnail(self, stack_path: Path, thumb_path: Path, log: Any) -> Path | None:
        """Step 4: the preview, or None (a failure here is only a warning)."""
        try:
            return self.thumbnailer(stack_path, thumb_path)
        except Exception as exc:
            # As in the original: a missing preview must not throw away a good stack.
            log.warning("thumbnail_failed", error=str(exc))
            return None

    def _publish(
        self, stack_path: Path, thumb_path: Path | None, paths: ResultPaths, run: JobRun
    ) -> int:
        """Step 5: stack and thumbnail into the result store; the stack's size, bytes."""
        control, progress, timings = run.control, run.progress, run.timings
        total = stack_path.stat().st_size + (thumb_path.stat().st_size if thumb_path else 0)

        def on_bytes(n: int) -> None:
            timings.bytes_uploaded += n
            progress.set("upload", timings.bytes_uploaded / max(1, total), "uploading")

        try:
            self.store.mkcol(paths.folder)
            control.check()
            size = self.store.upload_file(stack_path, paths.fits, on_bytes=on_bytes)
            if thumb_path is not None:
                control.check()
                self.store.upload_file(thumb_path, paths.thumbnail, on_bytes=on_bytes)
        except WorkerError:
            raise
        except OSError as exc:
            raise StorageError(f"result store {self.store.describe()}: {exc}") from exc
        return int(size)

    # -- failure handling -------------------------------------------------------------

    def _handle_failure(self, run: JobRun, exc: Exception) -> JobOutcome:
        """Abandon (lease lost), hand back (shutdown) or report the failed job."""
        job_id, step, log = run.job_id, run.current_step, run.log
        reason = run.control.reason if run.control.is_cancelled() else None
        if isinstance(exc, LeaseLost) or reason == "lease_lost":
            # The server gave the job to someone else: reporting would be refused and
            # deleting our upload could delete theirs (same deterministic path).
            log.warning("job_abandoned", step=step, reason="lease_lost", error=str(exc))
            return JobOutcome(job_id, "aborted", message=f"lease lost: {exc}", timings=run.timings)
        if reason == "shutdown" or (isinstance(exc, JobAborted) and exc.reason == "shutdown"):
            log.warning("job_handed_back", step=step)
            status = self._hand_back(job_id, log)
            return JobOutcome(
                job_id,
                "aborted",
                message=SHUTDOWN_MESSAGE,
                server_status=status,
                timings=run.timings,
            )
        message = failure_message(step, exc)
        if isinstance(exc, WorkerError):
            log.error("job_failed", step=step, error=message)
        else:
            log.error("job_failed", step=step, error=message, exc_info=exc)
        status = self._report_failure(job_id, message, log)
        return JobOutcome(
            job_id, "failed", message=message, server_status=status, timings=run.timings
        )

    def _hand_back(self, job_id: int, log: Any) -> str | None:
        """Give the job back without a failed attempt (``release_job``)."""
        return _final_report(
            log,
            "release_job",
            "job_released",
            lambda: self.api.release_job(job_id, SHUTDOWN_MESSAGE),
        )

    def _report_failure(self, job_id: int, message: str, log: Any) -> str | None:
        """Report the failure (``fail_job``); the server answers retry or failed."""
        return _final_report(
            log, "fail_job", "job_reported_failed", lambda: self.api.fail_job(job_id, message)
        )


def _final_report(
    log: Any, call: str, done_event: str, send: Callable[[], dict[str, Any]]
) -> str | None:
    """Send a job's last report; the job's new server status, or None if not taken."""
    try:
        reply = send()
    except LeaseLost as exc:
        log.warning(f"{call}_refused", error=str(exc))
        return None
    except Exception as exc:
        # The lease will run out and the server re-queues the job; nothing else to do.
        log.error(f"{call}_not_reported", error=str(exc))
        return None
    status = reply.get("status")
    log.info(done_event, server_status=status)
    return str(status) if status is not None else None


def failure_message(step: str, exc: BaseException) -> str:
    """The ``fail_job`` text: the step, then the reason (our errors already say why)."""
    if isinstance(exc, WorkerError) and str(exc) == NO_FILES_MESSAGE:
        return NO_FILES_MESSAGE
    text = str(exc) if isinstance(exc, WorkerError) else f"{type(exc).__name__}: {exc}"
    if text.startswith(f"{step} failed") or text.startswith(f"{step}:"):
        return text
    return f"{step} failed: {text}"


def _stack_summary(result: StackOutcome) -> dict[str, Any]:
    """The ``stack_done`` log fields of a stack."""
    return {
        "n_frames_input": result.n_frames_input,
        "n_frames_aligned": result.n_aligned,
        "n_stars_detected": result.n_stars_detected,
        "engine_timings_s": {
            k: round(float(v), 3) for k, v in getattr(result, "timings_s", {}).items()
        },
    }


def _is_sibling_abort(exc: BaseException) -> bool:
    return isinstance(exc, JobAborted) and exc.reason == "download_failed"


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value)) if value is not None and str(value).strip() else None
    except ValueError:
        return None


def _local_names(files: list[JobFile], raw_dir: Path) -> list[Path]:
    """Safe, unique local file names for the raws (server names are user data)."""
    seen: set[str] = set()
    targets = []
    for entry in files:
        name = safe_segment(str(entry.get("filename") or ""), fallback=f"raw_{entry['id']}.fit")
        if name.lower() in seen:
            name = f"{entry['id']}_{name}"
        seen.add(name.lower())
        targets.append(raw_dir / name)
    return targets


def build_result_store(
    settings: WorkerSettings, *, transport: Any = None, api: ApiClient | None = None
) -> ResultStore:
    """The result store the settings ask for: the WebDAV share, a local folder, or
    presigned PUTs (which asks the server through ``api``, built here when not given)."""
    if settings.store_kind == "presigned":
        from crowdsky.worker.presigned_store import PresignedResultStore

        return PresignedResultStore(api or build_api_client(settings), transport=transport)
    if settings.store_kind == "webdav":
        from crowdsky.worker.webdav import WebDavClient

        return WebDavClient.from_settings(settings, transport=transport)
    return LocalResultStore(settings.local_results_dir)


def build_api_client(settings: WorkerSettings, *, transport: Any = None) -> ApiClient:
    """The API client for ``API_BASE_URL`` / ``WORKER_API_KEY`` / ``WORKER_ID``."""
    return ApiClient(
        settings.api_base_url,
        settings.worker_api_key.get_secret_value(),
        settings.worker_id,
        transport=transport,
        max_connections=max(8, settings.max_workers * (settings.download_concurrency + 2)),
    )


def process_job(job: JobPayload, settings: WorkerSettings | None = None) -> JobOutcome:
    """The spec's ``process_job(job)``: run one claimed job with clients built from settings.

    Long-running workers build one :class:`JobProcessor` and reuse it; this helper
    is for scripts and cron-style use.
    """
    if settings is None:
        from crowdsky.worker.config import load_worker_settings

        settings = load_worker_settings()
    api = build_api_client(settings)
    store = build_result_store(settings, api=api)
    try:
        return JobProcessor.from_settings(settings, api, store).process_job(job)
    finally:
        store.close()
        api.close()
