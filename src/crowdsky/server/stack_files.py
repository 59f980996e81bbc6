"""Serving finished stacks from the local result store: path resolution and file replies.

Stacks are published by workers into a result store; the server serves the ones in
its local store (``CROWDSKY_RESULTS_DIR``, a worker's ``LOCAL_RESULTS_DIR``). A row
whose file is elsewhere (a WebDAV share) or gone is answered 404 with the reason.
Replies stream from the file (``FileResponse``): memory does not grow with the stack.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from fastapi.responses import FileResponse

from crowdsky.server.errors import register_error_status
from crowdsky.server.state import ServerState
from crowdsky.stacks import InvalidQuery, StackFileMissing, StackNotFound
from crowdsky.storage.result_store import LocalResultStore

register_error_status(StackNotFound, 404)
register_error_status(StackFileMissing, 404)
register_error_status(InvalidQuery, 400)

FITS_MEDIA_TYPE = "application/fits"


def local_file(state: ServerState, store_path: str | None) -> Path:
    """The local file of a result-store path.

    Raises
    ------
    StackFileMissing
    """
    if not store_path:
        raise StackFileMissing("this stack has no such file")
    try:
        path = LocalResultStore(state.settings.resolved_results_dir).path_for(store_path)
    except ValueError as exc:
        raise StackFileMissing("the stack's file path is not servable") from exc
    if not path.is_file():
        raise StackFileMissing("the stack's file is not available on this server")
    return path


def file_name(store_path: str) -> str:
    """The download name of a stored file: its last path segment (already a safe one)."""
    return PurePosixPath(store_path).name


def attachment(path: Path, name: str, media_type: str = FITS_MEDIA_TYPE) -> FileResponse:
    """A streamed download with ``Content-Disposition: attachment; filename="NAME"``
    and nothing after it, as seestarpy parses it (``clients.md``)."""
    safe = name.replace('"', "").replace("\\", "") or "stack.fits"
    return FileResponse(
        path,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{safe}"'},
    )
