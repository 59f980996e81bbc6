"""Result files of stacks whose rows are gone, deleted from the result store.

A stack replaced by a re-stack of its slot or by an ``overwrite`` upload, or deleted
in the web app, loses its row in that transaction; its files go after the commit,
here, from whichever store the server reads results from (a local folder, a WebDAV
share, an S3 bucket). A failure is logged, never raised: the rows are already right,
and a file left behind costs only space.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from crowdsky.storage.result_paths import STAR_JSON_SUFFIX
from crowdsky.storage.result_reader import ResultReader, ResultStoreUnavailable

log = structlog.get_logger(__name__)


def published_files(paths: Sequence[str]) -> list[str]:
    """The files a worker published for stacks recorded with ``paths`` (their FITS
    and thumbnail paths): those and each FITS file's star list beside it."""
    files: list[str] = []
    for path in paths:
        files.append(path)
        if path.endswith(".fits"):
            files.append(path[: -len(".fits")] + STAR_JSON_SUFFIX)
    return files


def discard_result_files(store: ResultReader, paths: Sequence[str]) -> int:
    """Delete the files of stacks whose rows are gone, after that commit.

    Parameters
    ----------
    store
        The server's result store.
    paths
        The rows' ``ucloud_path`` and ``thumbnail_path`` values; star lists beside
        the FITS files go too. A path the store cannot hold (a local store refuses a
        path outside its folder) is skipped.

    Returns
    -------
    int
        How many files were deleted or already gone.
    """
    deleted = 0
    for path in published_files(paths):
        try:
            store.delete_files([path])
        except ValueError:
            continue  # not a path of this store
        except (ResultStoreUnavailable, OSError) as exc:
            log.warning("result_files_left", store=store.describe(), path=path, error=str(exc))
            continue
        deleted += 1
    return deleted
