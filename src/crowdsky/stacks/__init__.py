"""The stack catalogue: what clients read about finished stacks, and who may read it."""

from __future__ import annotations

from crowdsky.stacks.catalog import (
    default_private,
    set_default_private,
    set_stack_private,
)
from crowdsky.stacks.coverage import rebuild_coverage, refresh_cells
from crowdsky.stacks.errors import (
    AlreadyUploaded,
    InvalidQuery,
    StackFileMissing,
    StackNotFound,
    StacksError,
)
from crowdsky.stacks.queries import (
    MAX_IDS_PER_REQUEST,
    SKY_DEC_DEG,
    SKY_RA_DEG,
    CoverageRow,
    StackRecord,
    TileQuery,
    find_user_stack,
    frames_by_healpix,
    get_published_stacks,
    get_user_stack,
    iter_coverage_lines,
    iter_user_stacks,
    sky_coverage,
)
from crowdsky.stacks.results import discard_result_files

__all__ = [
    "MAX_IDS_PER_REQUEST",
    "SKY_DEC_DEG",
    "SKY_RA_DEG",
    "AlreadyUploaded",
    "CoverageRow",
    "InvalidQuery",
    "StackFileMissing",
    "StackNotFound",
    "StackRecord",
    "StacksError",
    "TileQuery",
    "default_private",
    "discard_result_files",
    "find_user_stack",
    "frames_by_healpix",
    "get_published_stacks",
    "get_user_stack",
    "iter_coverage_lines",
    "iter_user_stacks",
    "rebuild_coverage",
    "refresh_cells",
    "set_default_private",
    "set_stack_private",
    "sky_coverage",
]
