"""Where a job's results live: ``<base>/stacks/user_<id>/<object>/stack_<chunk_key>_<job_id>``.

The original system's layout, so existing shares and links keep working. Names are
deterministic per job: a retried job overwrites its earlier, possibly partial, upload
instead of orphaning it. Object names and chunk keys are user data, so each becomes
one safe path segment (nothing outside ``[A-Za-z0-9._+-]``, no ``..``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

UNKNOWN_OBJECT = "unknown"
#: A stack's star list is published beside it: ``stack_K_7.fits`` -> ``stack_K_7_stars.json``.
STAR_JSON_SUFFIX = "_stars.json"
MAX_SEGMENT_CHARS = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_segment(value: str | None, *, fallback: str = UNKNOWN_OBJECT) -> str:
    """Turn user-provided text into one safe path segment.

    Parameters
    ----------
    value
        An object name or chunk key; ``None`` or blank gives ``fallback``.
    fallback
        Used when nothing safe is left.

    Returns
    -------
    str
        Runs of characters outside ``[A-Za-z0-9._+-]`` (spaces and ``/`` included,
        as in the original) replaced by one ``_``; leading dots removed so the
        result is never ``.``, ``..`` or hidden; at most 120 characters.

    Examples
    --------
    >>> safe_segment("NGC 188")
    'NGC_188'
    >>> safe_segment("../etc")
    '_etc'
    """
    text = _UNSAFE.sub("_", (value or "").strip())
    text = text.lstrip(".")[:MAX_SEGMENT_CHARS]
    return text if text.strip("_") else fallback


def normalize_base_path(base_path: str) -> str:
    """``UCLOUD_BASE_PATH`` as ``/a/b`` (leading slash, no trailing one; ``/`` for root)."""
    parts = [p for p in base_path.replace("\\", "/").split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ValueError(f"base path must not contain '.' or '..': {base_path!r}")
    return "/" + "/".join(parts)


@dataclass(frozen=True)
class ResultPaths:
    """The remote folder and file paths of one job's results (POSIX, absolute in the store)."""

    folder: str
    fits: str
    thumbnail: str


def result_paths(
    base_path: str, user_id: int, object_name: str | None, chunk_key: str, job_id: int
) -> ResultPaths:
    """The paths of a job's stack and thumbnail.

    Parameters
    ----------
    base_path
        ``UCLOUD_BASE_PATH`` (e.g. ``/crowdsky``).
    user_id, object_name, chunk_key, job_id
        From the claimed job.

    Returns
    -------
    ResultPaths
        e.g. ``/crowdsky/stacks/user_1/M42/stack_20250115.78_83.6_+22.0_42.fits`` and
        ``..._42_thumb.png``.
    """
    folder = PurePosixPath(normalize_base_path(base_path)) / "stacks" / f"user_{int(user_id)}"
    folder = folder / safe_segment(object_name)
    stem = f"stack_{safe_segment(chunk_key, fallback='nokey')}_{int(job_id)}"
    return ResultPaths(
        folder=str(folder),
        fits=str(folder / f"{stem}.fits"),
        thumbnail=str(folder / f"{stem}_thumb.png"),
    )
