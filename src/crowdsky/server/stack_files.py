"""Serving finished stacks from the result store: streamed replies, redirects, exports.

Workers publish stacks into a result store (local folder, WebDAV share or S3 bucket;
``CROWDSKY_RESULT_STORE``); the server reads them back through the store's
:class:`~crowdsky.storage.result_reader.ResultReader`. Replies relay the file chunk
by chunk (memory does not grow with the stack); an S3 store may instead answer 307 to
a presigned GET that carries the same ``Content-Disposition``. A row whose file is
gone is answered 404 with the reason, a store that cannot be read 503.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePosixPath

from fastapi.responses import RedirectResponse, Response, StreamingResponse

from crowdsky.server.errors import register_error_status
from crowdsky.server.state import ServerState
from crowdsky.stacking import interchange
from crowdsky.stacks import InvalidQuery, StackFileMissing, StackNotFound
from crowdsky.storage.result_reader import ResultFileMissing, ResultStoreUnavailable, StoredFile

register_error_status(StackNotFound, 404)
register_error_status(StackFileMissing, 404)
register_error_status(InvalidQuery, 400)
register_error_status(ResultStoreUnavailable, 503)

FITS_MEDIA_TYPE = "application/fits"
#: ``?format=`` values: the product itself, or an interchange copy of it.
DOWNLOAD_FORMATS = ("fits", *interchange.FORMATS)
#: A stack read whole (exports, star tables) may be at most this large.
MAX_READ_BYTES = 1024 * 1024 * 1024
#: Chunks of an export relayed to the client.
SEND_CHUNK_BYTES = 1024 * 1024


def open_result(state: ServerState, store_path: str | None) -> StoredFile:
    """Open a result-store file for streaming.

    Raises
    ------
    StackFileMissing
        No path recorded, or the store has no such file.
    ResultStoreUnavailable
        The store could not be read.
    """
    if not store_path:
        raise StackFileMissing("this stack has no such file")
    try:
        return state.result_reader.open_file(store_path)
    except ResultFileMissing as exc:
        raise StackFileMissing("the stack's file is not available in the result store") from exc


def read_result(state: ServerState, store_path: str | None) -> bytes:
    """A whole result-store file (for the readers that need all of it).

    Raises
    ------
    StackFileMissing, ResultStoreUnavailable
    """
    return open_result(state, store_path).read_all(MAX_READ_BYTES)


def file_name(store_path: str) -> str:
    """The download name of a stored file: its last path segment (already a safe one)."""
    return PurePosixPath(store_path).name


def content_disposition(name: str) -> str:
    """``attachment; filename="NAME"`` and nothing after it, as seestarpy parses it
    (``clients.md``)."""
    safe = name.replace('"', "").replace("\\", "") or "stack.fits"
    return f'attachment; filename="{safe}"'


def send_file(
    state: ServerState,
    store_path: str | None,
    name: str,
    media_type: str = FITS_MEDIA_TYPE,
    *,
    may_redirect: bool = False,
) -> Response:
    """A stored file as a streamed attachment, or (``may_redirect``, an S3 store with
    ``CROWDSKY_S3_REDIRECT_RESULTS``) a 307 to a presigned GET of it.

    Raises
    ------
    StackFileMissing, ResultStoreUnavailable
    """
    if may_redirect and store_path and state.settings.s3_redirect_results:
        url = state.result_reader.presigned_get_url(
            store_path, download_name=name, expires_s=state.settings.s3_presign_seconds
        )
        if url is not None:
            return RedirectResponse(url, status_code=307)
    stored = open_result(state, store_path)
    headers = {"Content-Disposition": content_disposition(name)}
    if stored.size is not None:
        headers["Content-Length"] = str(stored.size)
    return StreamingResponse(stored.chunks, media_type=media_type, headers=headers)


def send_inline(state: ServerState, store_path: str | None, media_type: str) -> Response:
    """A stored file streamed for display (thumbnails), not as an attachment.

    Raises
    ------
    StackFileMissing, ResultStoreUnavailable
    """
    stored = open_result(state, store_path)
    headers = {} if stored.size is None else {"Content-Length": str(stored.size)}
    return StreamingResponse(stored.chunks, media_type=media_type, headers=headers)


def send_download(
    state: ServerState, store_path: str, fmt: str, *, may_redirect: bool = False
) -> Response:
    """A stack in a download format: ``fits`` (the product, as :func:`send_file`),
    ``cube`` (``<stem>_cube.fits``) or ``tiff`` (``<stem>.tif``), made by
    :func:`crowdsky.stacking.interchange.export_stack`.

    Raises
    ------
    InvalidQuery
        Unknown format, or the stored file is not a stack the export can read.
    StackFileMissing, ResultStoreUnavailable
    """
    name = file_name(store_path)
    if fmt == "fits":
        return send_file(state, store_path, name, may_redirect=may_redirect)
    if fmt not in interchange.FORMATS:
        raise InvalidQuery(f"format: {fmt!r} is not one of {', '.join(DOWNLOAD_FORMATS)}")
    from crowdsky.stacking import InvalidInput

    try:
        data = interchange.export_stack(read_result(state, store_path), fmt)
    except InvalidInput as exc:
        raise InvalidQuery(f"this stack cannot be exported as {fmt}: {exc}") from exc
    return StreamingResponse(
        _pieces(data),
        media_type=interchange.MEDIA_TYPES[fmt],
        headers={
            "Content-Disposition": content_disposition(export_name(name, fmt)),
            "Content-Length": str(len(data)),
        },
    )


def export_name(name: str, fmt: str) -> str:
    """The download name of an export: ``stack_K_7.fits`` → ``stack_K_7_cube.fits`` or
    ``stack_K_7.tif``."""
    stem = PurePosixPath(name).stem or "stack"
    return f"{stem}_cube.fits" if fmt == "cube" else f"{stem}{interchange.SUFFIXES[fmt]}"


def _pieces(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), SEND_CHUNK_BYTES):
        yield data[start : start + SEND_CHUNK_BYTES]
