"""Result files of replaced stacks, deleted from the worker's result store.

When a stack replaces the slot's earlier stack, the server deletes the earlier row in
the completing transaction and answers ``complete_job`` with the earlier stack's
file paths (``replaced_files``). The server can reach only its local result folder;
a WebDAV share is the worker's, so the worker deletes them there, once that answer
has arrived (the replacing transaction has committed; never before).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from crowdsky.storage.result_store import ResultStore

log = structlog.get_logger(__name__)


def discard_replaced(store: ResultStore, base_path: str, answer: Mapping[str, Any]) -> int:
    """Delete the ``replaced_files`` of a ``complete_job`` answer; how many were asked.

    Only share paths under ``base_path`` (where this worker publishes) are deleted: the
    answer names files, it does not get to delete anything else. A store error is
    logged, not raised: the new stack is recorded, an old file left behind costs space.
    """
    paths = answer.get("replaced_files")
    if not isinstance(paths, list):
        return 0
    root = base_path.rstrip("/") + "/"
    mine = [p for p in paths if isinstance(p, str) and p.startswith(root) and ".." not in p]
    if len(mine) != len(paths):
        log.warning(
            "replaced_files_outside_base", base_path=base_path, skipped=len(paths) - len(mine)
        )
    if not mine:
        return 0
    try:
        store.delete_files(mine)
    except Exception as exc:  # any store failure: the stack itself is safe
        log.warning("replaced_files_not_deleted", store=store.describe(), error=str(exc))
        return 0
    log.info("replaced_files_deleted", count=len(mine))
    return len(mine)
