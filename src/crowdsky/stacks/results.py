"""Result files of stacks whose rows are gone: deleted from the local result store.

A stack replaced by a re-stack of its slot, or by an ``overwrite`` upload, loses its
row in the replacing transaction; its files go after that commit, here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from crowdsky.storage.result_store import LocalResultStore


def discard_result_files(results_root: Path, paths: Sequence[str]) -> int:
    """Delete the files of stacks whose rows are gone (replaced), after that commit.

    Only files of the local result store under ``results_root`` are deleted; a path it
    refuses (a stack on a remote share) is left alone. Returns how many were tried.
    """
    store = LocalResultStore(results_root)
    tried = 0
    for path in paths:
        try:
            store.delete_files([path])
        except ValueError:
            continue  # a path the local store refuses is not one of its files
        tried += 1
    return tried
