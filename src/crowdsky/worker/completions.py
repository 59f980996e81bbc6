"""A finished stack is never abandoned: completions are kept on disk until delivered.

A job whose stack is uploaded has cost minutes of CPU; if the server is away when the
worker reports it, giving up means the lease runs out and another worker stacks the
same frames again. So the report (``complete_job``'s body, with the lease token) is
written to ``WORK_DIR/completions/`` before it is first sent, retried with capped,
jittered backoff for as long as the job's lease allows (the heartbeat keeps renewing
it meanwhile), and removed only once the server took it or refused it for good. A
worker that stops first (shutdown, crash, power cut) finds it at its next start and
delivers it then.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import structlog

from crowdsky.worker.api_client import ApiClient
from crowdsky.worker.errors import ApiAuthError, ApiError, ApiUnavailable

log = structlog.get_logger(__name__)

OUTBOX_FOLDER = "completions"
#: Waits between delivery attempts: doubling from the first, capped, with jitter.
FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 15.0
#: How often a wait between attempts looks whether the worker is stopping (seconds).
STOP_POLL_SECONDS = 0.25
#: A saved completion older than this is dropped unsent: its job was reaped long ago.
MAX_AGE_SECONDS = 7 * 24 * 3600.0

Delivery = Literal["delivered", "kept"]


@dataclass(frozen=True, slots=True)
class PendingCompletion:
    """One saved ``complete_job`` report."""

    job_id: int
    metadata: dict[str, Any]
    lease_token: str | None
    saved_at: float


class CompletionOutbox:
    """The folder of completions not yet delivered, one JSON file per job."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save(self, job_id: int, metadata: dict[str, Any], lease_token: str | None) -> None:
        """Write a completion durably (temporary file, fsync, atomic rename)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {
            "job_id": job_id,
            "metadata": metadata,
            "lease_token": lease_token,
            "saved_at": time.time(),
        }
        target = self._path(job_id)
        temporary = target.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8") as fh:
            json.dump(record, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, target)

    def remove(self, job_id: int) -> None:
        """Forget a delivered (or finally refused) completion."""
        self._path(job_id).unlink(missing_ok=True)

    def pending(self) -> list[PendingCompletion]:
        """Saved completions, oldest first; unreadable files are skipped and logged."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in sorted(self.folder.glob("job_*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                found.append(
                    PendingCompletion(
                        job_id=int(record["job_id"]),
                        metadata=dict(record["metadata"]),
                        lease_token=record.get("lease_token"),
                        saved_at=float(record["saved_at"]),
                    )
                )
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("completion_unreadable", path=path.name, error=str(exc))
        return sorted(found, key=lambda p: p.saved_at)

    def _path(self, job_id: int) -> Path:
        return self.folder / f"job_{int(job_id)}.json"


def deliver(
    api: ApiClient,
    outbox: CompletionOutbox,
    pending: PendingCompletion,
    *,
    deadline: float,
    should_stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
    on_answer: Callable[[dict[str, Any]], object] = lambda _answer: None,
) -> Delivery:
    """Send one saved completion until the server answers, ``deadline`` or a stop.

    Parameters
    ----------
    deadline
        ``time.monotonic()`` after which no further attempt starts (the lease's end as
        far as the worker knows); at least one attempt is always made.
    should_stop
        Polled between attempts: the worker is shutting down, keep it for next start.
    on_answer
        Called with the server's answer once it recorded the report (the worker then
        deletes the replaced stacks' files, ``replaced_results``).

    Returns
    -------
    ``"delivered"`` (the server recorded it, or had already) or ``"kept"`` (still on
    disk for a later attempt).

    Raises
    ------
    ApiError
        The server refused it for good (:class:`LeaseLost`: the job is no longer
        ours; another 4xx: the report itself is wrong); the file is removed.
    """
    bound = log.bind(job_id=pending.job_id)
    api.remember_lease(pending.job_id, pending.lease_token)
    wait = FIRST_RETRY_SECONDS
    attempt = 0
    while True:
        attempt += 1
        try:
            answer = api.complete_job(pending.job_id, pending.metadata)
        except (ApiUnavailable, ApiAuthError) as exc:
            # server away or restarting (auth errors too: a key being rotated)
            bound.warning("completion_not_delivered", attempt=attempt, error=str(exc))
        except ApiError as exc:  # LeaseLost included: the server will never take it
            bound.warning("completion_refused", error=str(exc))
            outbox.remove(pending.job_id)
            raise
        else:
            outbox.remove(pending.job_id)
            on_answer(answer)  # after the server committed (replaced stacks' files)
            if attempt > 1:
                bound.info("completion_delivered", attempts=attempt)
            return "delivered"
        pause = random.uniform(wait / 2, wait)
        if not should_stop() and time.monotonic() + pause <= deadline:
            resume = time.monotonic() + pause
            while not should_stop() and (left := resume - time.monotonic()) > 0:
                sleep(min(STOP_POLL_SECONDS, left))
        if should_stop() or time.monotonic() > deadline:
            bound.warning("completion_kept", reason="stopping" if should_stop() else "lease")
            return "kept"
        wait = min(MAX_RETRY_SECONDS, wait * 2)


def deliver_saved(
    api: ApiClient,
    outbox: CompletionOutbox,
    *,
    should_stop: Callable[[], bool],
    on_answer: Callable[[dict[str, Any]], object] = lambda _answer: None,
) -> int:
    """Deliver what an earlier run left behind (one short try each); how many remain."""
    remaining = 0
    for pending in outbox.pending():
        if time.time() - pending.saved_at > MAX_AGE_SECONDS:
            log.warning("completion_dropped", job_id=pending.job_id, reason="too old")
            outbox.remove(pending.job_id)
            continue
        try:
            delivery = deliver(
                api, outbox, pending, deadline=0.0, should_stop=should_stop, on_answer=on_answer
            )
        except ApiError:
            continue  # refused for good, logged and removed
        if delivery == "kept":
            remaining += 1
    return remaining
