"""The reply of ``download_raw``: the file itself, or a redirect to the object store.

With the local raw store the server streams the file (``FileResponse``). With an
object store that can presign, the server answers ``307 Temporary Redirect`` to a
short-lived presigned GET: the worker's HTTP client follows it (``requests`` does so
on GET by default, as the original v1 worker relies on; our worker's httpx client is
built with ``follow_redirects=True``), the bytes go straight from the store to the
worker and the API server only signs a URL. ``CROWDSKY_S3_REDIRECT_DOWNLOADS=0``
makes the server proxy the object instead (for stores workers cannot reach).
A missing file is a 404 in the spec's JSON shape either way: the object is checked
before a URL is signed.
"""

from __future__ import annotations

from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from starlette.responses import Response

from crowdsky import queue
from crowdsky.server.state import ServerState
from crowdsky.storage.s3_raw_store import S3RawStore


def raw_file_response(
    state: ServerState, storage_path: str, filename: str, file_id: int
) -> Response:
    """The response that delivers one stored raw file to a worker.

    Raises
    ------
    queue.RawFileNotFound
        The file is not in the store.
    """
    store = state.raw_store
    if not isinstance(store, S3RawStore):
        path = store.resolve(storage_path)
        if not path.is_file():
            raise queue.RawFileNotFound(f"raw file {file_id} is missing on the server's disk")
        return FileResponse(path, media_type="application/octet-stream", filename=filename)
    if not store.exists(storage_path):
        raise queue.RawFileNotFound(f"raw file {file_id} is missing from the object store")
    if state.settings.s3_redirect_downloads:
        url = store.download_url(storage_path, filename)
        if url is not None:
            return RedirectResponse(url, status_code=307)
    return StreamingResponse(
        store.open_object(storage_path),
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename.replace(chr(34), "")}"'},
    )
