"""Storage: the raw-frame buffer on the server and the result stores of the workers."""

from __future__ import annotations

from crowdsky.storage.raw_store import PartialUpload, RawStore, UnsafePath, UploadTooLarge
from crowdsky.storage.result_paths import (
    ResultPaths,
    normalize_base_path,
    result_paths,
    safe_segment,
)
from crowdsky.storage.result_store import LocalResultStore, ResultStore

__all__ = [
    "LocalResultStore",
    "PartialUpload",
    "RawStore",
    "ResultPaths",
    "ResultStore",
    "UnsafePath",
    "UploadTooLarge",
    "normalize_base_path",
    "result_paths",
    "safe_segment",
]
