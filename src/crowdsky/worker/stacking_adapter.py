"""The worker's bridge to the stacking engine, and the ``complete_job`` metadata it yields.

:func:`stack_files` keeps the original worker's signature but runs
:func:`crowdsky.stacking.stack_files` (the engine is imported on first use, so
``import crowdsky.worker`` stays light and nothing touches the network at import).
Engine errors become :class:`~crowdsky.worker.errors.StackingFailed` with the
engine's message. :func:`build_metadata` turns a result into the spec's
``complete_job`` body with the real aligned-frame count and ISO 8601 UTC times taken
from parsed datetimes. :func:`verify_raw_file` catches a damaged raw before the
stacking time is spent on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from crowdsky.worker.api_client import report_text
from crowdsky.worker.errors import JobAborted, StackingFailed

DEFAULT_METHOD = "mean"
DEFAULT_SIGMA_CLIP = 3.0

# Relative share of the engine's wall time per stage, to turn its per-stage
# done/total events into one 0..1 fraction for heartbeats (measured on S50 frames,
# rounded; only the progress bar depends on it).
STAGE_WEIGHTS: dict[str, float] = {
    "analyse": 0.30,
    "register": 0.15,
    "warp": 0.20,
    "combine": 0.25,
    "catalogue": 0.05,
    "write": 0.05,
}


class StackOutcome(Protocol):
    """What the worker needs from a stack result (``crowdsky.stacking.StackResult``)."""

    output_path: Path
    n_frames_input: int
    n_aligned: int
    n_stars_detected: int | None
    total_exptime: float
    date_obs_start: datetime | None
    date_obs_end: datetime | None
    ra_deg: float | None
    dec_deg: float | None


class Stacker(Protocol):
    """The signature of :func:`stack_files`; tests inject fakes of this shape."""

    def __call__(
        self,
        fits_paths: Sequence[Path],
        output_path: Path,
        method: str = ...,
        sigma_clip: float = ...,
        *,
        progress: Callable[[float, str], None] | None = ...,
    ) -> StackOutcome: ...


def prepare_engine() -> None:
    """Load the engine's compiled kernels in the background, once per process (the
    first job of a fresh worker then does not wait for them). The loading thread is
    joined at exit, so a ``--once`` worker calls this only after it has claimed a job:
    finding none stays instant."""
    from crowdsky.stacking import prepare

    prepare()


def stack_files(
    fits_paths: Sequence[Path],
    output_path: Path,
    method: str = DEFAULT_METHOD,
    sigma_clip: float = DEFAULT_SIGMA_CLIP,
    *,
    progress: Callable[[float, str], None] | None = None,
) -> StackOutcome:
    """Stack raw frames into ``output_path`` with the CrowdSky engine.

    Parameters
    ----------
    fits_paths
        The job's raw frames.
    output_path
        Where the multi-extension FITS stack is written.
    method, sigma_clip
        Combination method and clipping threshold (the original's ``mean`` / 3.0).
    progress
        Called with ``(fraction 0..1, message)`` as the engine advances; it may raise
        (e.g. :class:`~crowdsky.worker.errors.JobAborted`) to stop the engine.

    Returns
    -------
    crowdsky.stacking.StackResult

    Raises
    ------
    StackingFailed
        The engine could not stack (no usable frames, unreadable input, write error).
    """
    from crowdsky.stacking import StackingError
    from crowdsky.stacking import stack_files as engine_stack_files

    engine_progress = None if progress is None else _engine_progress(progress)
    try:
        return engine_stack_files(
            [Path(p) for p in fits_paths],
            Path(output_path),
            method=method,
            sigma_clip=sigma_clip,
            progress=engine_progress,
        )
    except StackingError as exc:
        if isinstance(exc.__cause__, JobAborted):
            raise exc.__cause__ from None  # our own progress callback stopped the engine
        text = str(exc)
        raise StackingFailed(
            text if text.startswith("stacking failed") else f"stacking failed: {text}"
        ) from exc
    except MemoryError as exc:
        raise StackingFailed("stacking failed: out of memory") from exc


def _engine_progress(progress: Callable[[float, str], None]) -> Callable[[Any], None]:
    order = list(STAGE_WEIGHTS)

    def report(event: Any) -> None:
        stage = str(getattr(event, "stage", ""))
        done = float(getattr(event, "done", 0) or 0)
        total = float(getattr(event, "total", 0) or 0)
        before = sum(STAGE_WEIGHTS[s] for s in order[: order.index(stage)]) if stage in order else 0
        within = STAGE_WEIGHTS.get(stage, 0.0) * (done / total if total > 0 else 0.0)
        message = str(getattr(event, "message", "") or f"{stage} {int(done)}/{int(total)}")
        progress(min(1.0, before + within), message)

    return report


def verify_raw_file(path: Path) -> None:
    """Check that a downloaded raw is a complete, readable FITS file.

    Only the primary header is parsed and the data size compared with the file
    size, which costs milliseconds. The upload API already validated the file, so
    damage here means it broke at rest or in transit; failing the job (and letting a
    retry download it again) is better than silently stacking one frame fewer.

    Raises
    ------
    StackingFailed
        Naming the file and what is wrong with it.
    """
    from crowdsky.stacking import fits_header  # the engine's card reader (no astropy)

    try:
        with open(path, "rb") as fh:
            start = fh.read(9)
            fh.seek(0)
            header = fits_header.read_header(fh) if start == b"SIMPLE  =" else None
    except OSError as exc:
        raise StackingFailed(f"raw file {path.name} is corrupt: unreadable ({exc})") from exc
    if start != b"SIMPLE  =":
        raise StackingFailed(f"raw file {path.name} is corrupt: not a FITS file")
    if header is None:
        raise StackingFailed(f"raw file {path.name} is corrupt: unreadable header (no END card)")
    try:
        needed = fits_header.data_bytes(header)
    except ValueError as exc:
        raise StackingFailed(f"raw file {path.name} is corrupt: unreadable header ({exc})") from exc
    if needed == 0:
        raise StackingFailed(f"raw file {path.name} is corrupt: no image data")
    size = path.stat().st_size
    if size < header.nbytes + needed:
        raise StackingFailed(
            f"raw file {path.name} is corrupt: truncated "
            f"({size} bytes, expected at least {header.nbytes + needed})"
        )


def iso_utc(value: datetime | None) -> str | None:
    """An aware datetime as ISO 8601 UTC with ``Z`` (naive ones are taken as UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def build_metadata(
    result: StackOutcome,
    *,
    ucloud_path: str,
    thumbnail_path: str | None,
    file_size_bytes: int,
) -> dict[str, Any]:
    """The ``complete_job`` body (without ``job_id``) for a stack result.

    Parameters
    ----------
    result
        The engine's result.
    ucloud_path, thumbnail_path
        Where the stack and thumbnail were published (``thumbnail_path`` is
        ``None`` when the thumbnail could not be made).
    file_size_bytes
        Size of the published stack.

    Returns
    -------
    dict
        The spec's fields; ``n_frames_aligned`` is the number of frames actually
        stacked, times are ISO 8601 UTC.
    """
    return {
        "ucloud_path": ucloud_path,
        "thumbnail_path": thumbnail_path,
        "n_frames_input": int(result.n_frames_input),
        "n_frames_aligned": int(result.n_aligned),
        "total_exptime": float(_finite(result.total_exptime) or 0.0),
        "date_obs_start": iso_utc(result.date_obs_start),
        "date_obs_end": iso_utc(result.date_obs_end),
        "ra_deg": _finite(result.ra_deg),
        "dec_deg": _finite(result.dec_deg),
        "file_size_bytes": int(file_size_bytes),
        "n_stars_detected": (
            None if result.n_stars_detected is None else int(result.n_stars_detected)
        ),
        # a CrowdSky extension (the original server ignores unknown fields)
        "rejected_frames": [
            {
                "filename": report_text(frame.filename, 255),
                "reason": report_text(frame.reason or "rejected", 500),
            }
            for frame in result.frames
            if not frame.accepted
        ],
    }
