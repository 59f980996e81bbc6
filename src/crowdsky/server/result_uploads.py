"""Results by presigned PUT: a held job's result URLs, and the check before completion.

A volunteer's worker should never hold the result store's credentials. With
``CROWDSKY_RESULT_STORE=s3://...`` the server names each job's result files (the layout
of :mod:`crowdsky.storage.result_paths` under the store's root), signs one PUT per file
for the job's holder (``result_upload_urls``), and on ``complete_job`` checks with a HEAD
that the stack is at the job's path with the reported size (and the thumbnail, when
reported, at its path) before the job may complete: a worker cannot complete a job
whose results are not there, nor point it at another job's objects.
"""

from __future__ import annotations

from dataclasses import dataclass

from crowdsky.queue import HeldJob
from crowdsky.storage.result_paths import STAR_JSON_SUFFIX, result_paths
from crowdsky.storage.s3_result_store import S3ResultStore

#: Result paths are named from the store's root (its prefix), as a worker's
#: ``UCLOUD_BASE_PATH=/`` would name them.
RESULT_BASE_PATH = "/"


class ResultUploadsUnavailable(Exception):
    """This server signs no result uploads: CROWDSKY_RESULT_STORE is not set."""


class ResultNotStored(Exception):
    """A reported result file is not in the result store as reported."""


@dataclass(frozen=True, slots=True)
class SignedUpload:
    """One result file of a job and the URL that accepts its PUT."""

    kind: str
    path: str
    url: str


def job_result_files(job: HeldJob) -> dict[str, str]:
    """The job's result paths by kind: ``fits``, ``thumbnail`` and ``stars`` (star JSON)."""
    paths = result_paths(RESULT_BASE_PATH, job.user_id, job.object_name, job.chunk_key, job.job_id)
    return {
        "fits": paths.fits,
        "thumbnail": paths.thumbnail,
        "stars": paths.fits.removesuffix(".fits") + STAR_JSON_SUFFIX,
    }


def sign_uploads(store: S3ResultStore | None, job: HeldJob, expires_s: int) -> list[SignedUpload]:
    """Presigned PUT URLs for each of the job's result files.

    Raises
    ------
    ResultUploadsUnavailable
        The server has no S3 result store.
    """
    if store is None:
        raise ResultUploadsUnavailable()
    return [
        SignedUpload(kind, path, store.presigned_put_url(path, expires_s))
        for kind, path in job_result_files(job).items()
    ]


def verify_results(
    store: S3ResultStore, job: HeldJob, fits_path: str, size_bytes: int, thumbnail: str | None
) -> None:
    """Check that the reported results are the job's and are stored as reported.

    Raises
    ------
    ResultNotStored
        A path is not the job's, an object is missing, or the stack's size differs.
    """
    expected = job_result_files(job)
    if fits_path != expected["fits"]:
        raise ResultNotStored(f"ucloud_path must be this job's stack path {expected['fits']}")
    if thumbnail is not None and thumbnail != expected["thumbnail"]:
        raise ResultNotStored(f"thumbnail_path must be {expected['thumbnail']} or absent")
    stored = store.object_size(fits_path)
    if stored is None:
        raise ResultNotStored(f"no stack at {fits_path} in the result store: upload it first")
    if size_bytes and stored != size_bytes:
        raise ResultNotStored(
            f"the stack at {fits_path} holds {stored} bytes, not the reported {size_bytes}"
        )
    if thumbnail is not None and store.object_size(thumbnail) is None:
        raise ResultNotStored(f"no thumbnail at {thumbnail} in the result store")
