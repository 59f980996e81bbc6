"""CrowdSky's stacking engine: registration, rejection and combination of Seestar frames.

Public API::

    stack_files(paths, output, method="mean", sigma_clip=3.0, *, params=None, progress=None)
    generate_thumbnail(fits_path, output_path, max_size=512, stretch="linear")
    prepare()  # optional: load the compiled kernels in the background ahead of time
    export_stack(path_or_bytes, "cube" | "tiff") -> bytes  # interchange copies
    write_export(stack_path, output_path, "cube" | "tiff")

This package imports nothing from the server, worker, database, queue or ingest
packages; importing it loads only numpy and the standard library (astropy, OpenCV,
sep and numba are imported when a function needs them).
"""

from __future__ import annotations

from crowdsky.stacking.api import prepare, stack_files
from crowdsky.stacking.errors import InvalidInput, NoUsableFrames, OutputError, StackingError
from crowdsky.stacking.interchange import export_stack, write_export
from crowdsky.stacking.params import StackParams
from crowdsky.stacking.result import FrameRecord, RejectReason, StackProgress, StackResult
from crowdsky.stacking.thumbnail import generate_thumbnail

__all__ = [
    "FrameRecord",
    "InvalidInput",
    "NoUsableFrames",
    "OutputError",
    "RejectReason",
    "StackParams",
    "StackProgress",
    "StackResult",
    "StackingError",
    "export_stack",
    "generate_thumbnail",
    "prepare",
    "stack_files",
    "write_export",
]
