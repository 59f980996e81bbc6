"""The job queue: statuses, transitions (claim, lease, complete, fail, reap) and records."""

from __future__ import annotations

from crowdsky.queue.errors import (
    AlreadyCompleted,
    HeldByOtherWorker,
    IllegalMove,
    JobNotFound,
    QueueError,
    RawFileNotFound,
    WrongState,
)
from crowdsky.queue.records import (
    ClaimedJob,
    Completion,
    CompletionOutcome,
    FailureOutcome,
    JobFileEntry,
    JobFiles,
    LeaseRenewal,
    NewJob,
    PlateSolveReport,
    RawFileLocation,
    ReleaseOutcome,
    WorkerCaller,
)
from crowdsky.queue.slot_chain import extend_job
from crowdsky.queue.states import MAX_ATTEMPTS, AttemptOutcome, JobStatus
from crowdsky.queue.transitions import (
    add_jobs,
    claim_next_job,
    complete_job,
    enqueue_jobs,
    extend_lease,
    fail_job,
    list_job_files,
    locate_raw_file,
    reap_expired_leases,
    release_job,
)
from crowdsky.queue.views import (
    JobView,
    StackView,
    get_job,
    list_user_jobs,
    list_user_stacks,
)

__all__ = [
    "MAX_ATTEMPTS",
    "AlreadyCompleted",
    "AttemptOutcome",
    "ClaimedJob",
    "Completion",
    "CompletionOutcome",
    "FailureOutcome",
    "HeldByOtherWorker",
    "IllegalMove",
    "JobFileEntry",
    "JobFiles",
    "JobNotFound",
    "JobStatus",
    "JobView",
    "LeaseRenewal",
    "NewJob",
    "PlateSolveReport",
    "QueueError",
    "RawFileLocation",
    "RawFileNotFound",
    "ReleaseOutcome",
    "StackView",
    "WorkerCaller",
    "WrongState",
    "add_jobs",
    "claim_next_job",
    "complete_job",
    "enqueue_jobs",
    "extend_job",
    "extend_lease",
    "fail_job",
    "get_job",
    "list_job_files",
    "list_user_jobs",
    "list_user_stacks",
    "locate_raw_file",
    "reap_expired_leases",
    "release_job",
]
