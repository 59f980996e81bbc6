"""The app and bot's reads of their own stacks: ``download_stack``, ``thumbnail``, privacy.

Paths and replies of the later original server (``clients.md``): HTTP Basic (user
name or e-mail and password) or a user API key. A stack of another user is answered
exactly like an unknown one (404). Files stream from the result store
(:mod:`crowdsky.server.stack_files`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from crowdsky import stacks
from crowdsky.db.types import utcnow
from crowdsky.server import stack_files
from crowdsky.server.deps import DbSession, State
from crowdsky.server.errors import BadRequest, PayloadTooLarge, register_error_status
from crowdsky.server.routes import php_paths
from crowdsky.server.schemas.worker_api import ErrorResponse
from crowdsky.server.state import ServerState
from crowdsky.server.user_auth import AuthenticatedUser
from crowdsky.stacks import uploads
from crowdsky.storage.raw_store import UploadTooLarge

router = APIRouter(tags=["app and bot API"])
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed request"},
    401: {"model": ErrorResponse, "description": "Missing or wrong credentials"},
    404: {"model": ErrorResponse, "description": "No such stack of the caller, or no file"},
}
MAX_STACK_ID = 2**63 - 1
#: Copy an uploaded stack from the parser's spool file into the raw buffer in these.
COPY_CHUNK_BYTES = 1024 * 1024
#: A thumbnail beside the stack may add this much to the body.
MAX_THUMBNAIL_BYTES = 8 * 1024 * 1024
TRUE_VALUES = frozenset({"1", "true", "yes", "on"})
FALSE_VALUES = frozenset({"", "0", "false", "no", "off"})

register_error_status(stacks.AlreadyUploaded, 409)
register_error_status(UploadTooLarge, 413)
ChunkKey = Annotated[str, Query(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z._+-]+$")]
StackId = Annotated[int, Query(ge=1, le=MAX_STACK_ID, description="Stack id")]
DownloadFormat = Annotated[
    Literal["fits", "cube", "tiff"],
    Query(description="fits (the product), cube (primary-HDU RGB FITS) or tiff (16-bit)"),
]


def download_stack(
    state: State,
    session: DbSession,
    user: AuthenticatedUser,
    chunk_key: ChunkKey,
    telescope_id: Annotated[int | None, Query(ge=1, le=MAX_STACK_ID)] = None,
    format: DownloadFormat = "fits",
) -> Response:
    """The caller's newest stack of a chunk key, streamed, with
    ``Content-Disposition: attachment; filename="NAME"``. ``format=cube`` sends the
    primary-HDU RGB cube (``NAME_cube.fits``), ``format=tiff`` the 16-bit TIFF
    (``NAME.tif``). From an S3 result store the FITS may come as a 307 to a presigned GET.

    Example: ``curl -u alice:PASSWORD -OJ
    'https://HOST/api/download_stack.php?chunk_key=20260227.90_HP006252'``
    """
    record = stacks.find_user_stack(
        session, user_id=user.id, chunk_key=chunk_key, telescope_id=telescope_id
    )
    return stack_files.send_download(state, record.ucloud_path, format, may_redirect=True)


def thumbnail(state: State, session: DbSession, user: AuthenticatedUser, id: StackId) -> Response:
    """The PNG preview of one of the caller's stacks.

    Example: ``curl -u alice:PASSWORD -o thumb.png 'https://HOST/api/thumbnail.php?id=7'``
    """
    record = stacks.get_user_stack(session, user_id=user.id, stack_id=id)
    return stack_files.send_inline(state, record.thumbnail_path, "image/png")


def stack_privacy(
    session: DbSession,
    user: AuthenticatedUser,
    private: Annotated[Literal["0", "1"], Form(description="1: private, 0: published")],
    id: Annotated[int | None, Form(ge=1, le=MAX_STACK_ID, description="Stack id")] = None,
) -> dict[str, Any]:
    """Mark one stack private or published; without ``id``, set the caller's default
    for new stacks. Private stacks never appear in the data API or the coverage.

    Example: ``curl -u alice:PASSWORD -d id=7 -d private=1
    https://HOST/api/stack_privacy.php`` → ``{"ok": true, "id": 7, "private": true}``
    """
    flag = private == "1"
    if id is None:
        stacks.set_default_private(session, user_id=user.id, private=flag)
        return {"ok": True, "default_private": flag}
    stacks.set_stack_private(session, user_id=user.id, stack_id=id, private=flag)
    return {"ok": True, "id": id, "private": flag}


async def upload_stack(request: Request, state: State, user: AuthenticatedUser) -> dict[str, Any]:
    """Queue a stack made elsewhere (on the telescope, on a desktop) for post-processing.

    Multipart ``file`` (the FITS stack), optional ``thumbnail`` (accepted; the worker
    makes our own), optional fields ``n_frames_input``, ``n_frames_aligned``,
    ``date_obs_start``, ``date_obs_end`` (the stack's own header wins), ``scrub_location``
    and ``overwrite`` (``"1"``). Answer ``{ok, job_id, chunk_key, status: "queued"}``;
    the stack appears in ``my_stacks`` when its job completes. 409 when the chunk key
    of this telescope already has a stack or a queued job (``overwrite=1`` replaces).

    Example: ``curl -u alice:PASSWORD -F file=@CrowdSky_38_M81_10.0s_LP_20260227.90_HP012345.fit
    https://HOST/api/upload_stack.php``
    """
    limit = state.settings.max_upload_bytes + MAX_THUMBNAIL_BYTES
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the upload is larger than {limit} bytes")
    received = 0
    receive = request.receive

    async def bounded_receive() -> Any:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise PayloadTooLarge(f"the upload is larger than {limit} bytes")
        return message

    request._receive = bounded_receive
    try:
        form = await request.form(max_files=2, max_fields=20)
    except PayloadTooLarge:
        raise
    except Exception as exc:  # malformed multipart: python-multipart's own errors
        raise BadRequest(f"malformed multipart body: {exc}") from exc
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BadRequest("send the stack as multipart/form-data with a 'file' field")
        flags = {name: _flag(form.get(name), name) for name in ("scrub_location", "overwrite")}
        for name in ("n_frames_input", "n_frames_aligned"):
            value = form.get(name)
            if value is not None and (not isinstance(value, str) or not value.isdigit()):
                raise BadRequest(f"{name}: must be a whole number")
        return await run_in_threadpool(_queue_stack, state, user.id, upload, flags)
    finally:
        await form.close()


def _queue_stack(
    state: ServerState, user_id: int, upload: UploadFile, flags: dict[str, bool]
) -> dict[str, Any]:
    token, folder = uploads.new_upload_dir(state.raw_store, user_id)
    partial = state.raw_store.open_partial(folder, state.settings.max_upload_bytes)
    try:
        upload.file.seek(0)
        while chunk := upload.file.read(COPY_CHUNK_BYTES):
            partial.write(chunk)
    except BaseException:
        partial.discard()
        state.raw_store.remove_dir_if_empty(folder)
        raise
    with state.session_factory() as session:
        try:
            received = uploads.StackUpload(
                user_id=user_id,
                token=token,
                partial=partial,
                file_name=upload.filename or "",
                scrub_location=flags["scrub_location"],
                overwrite=flags["overwrite"],
            )
            queued = uploads.queue_uploaded_stack(
                session,
                utcnow(),
                received,
                raw_store=state.raw_store,
                key_format=state.settings.chunk_key_format,
                result_store=state.result_reader,
            )
        except BaseException:
            state.raw_store.remove_dir_if_empty(folder)
            raise
    return {"ok": True, "job_id": queued.job_id, "chunk_key": queued.chunk_key, "status": "queued"}


def _flag(value: object, name: str) -> bool:
    if value is None:
        return False
    text = value.strip().lower() if isinstance(value, str) else None
    if text in TRUE_VALUES:
        return True
    if text in FALSE_VALUES:
        return False
    raise BadRequest(f"{name}: use 1 or 0")


#: What the file answers are, for the OpenAPI document.
FILE_REPLY: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The stack (FITS, or the cube / TIFF asked for)",
        "content": {
            "application/fits": {"schema": {"type": "string", "format": "binary"}},
            "image/tiff": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    307: {"description": "From an S3 result store: a presigned GET of the FITS"},
}
PNG_REPLY: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "PNG preview",
        "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
    }
}

#: File answers are not JSON: no application/json success body in the document.
_FILE: dict[str, Any] = {"response_class": Response}

for _name, _handler, _method, _kwargs in (
    ("upload_stack", upload_stack, "POST", {"responses": ERRORS}),
    ("download_stack", download_stack, "GET", {"responses": {**ERRORS, **FILE_REPLY}, **_FILE}),
    ("thumbnail", thumbnail, "GET", {"responses": {**ERRORS, **PNG_REPLY}, **_FILE}),
    ("stack_privacy", stack_privacy, "POST", {"responses": ERRORS}),
):
    php_paths.add_php_route(router, _name, _handler, methods=[_method], **_kwargs)
router.add_api_route(
    "/thumbnail.php", thumbnail, methods=["GET"], responses={**ERRORS, **PNG_REPLY}, **_FILE
)
