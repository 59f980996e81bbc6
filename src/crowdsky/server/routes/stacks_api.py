"""The app and bot's reads of their own stacks: ``download_stack``, ``thumbnail``, privacy.

Paths and replies of the later original server (``clients.md``): HTTP Basic (user
name or e-mail and password) or a user API key. A stack of another user is answered
exactly like an unknown one (404). Files stream from the local result store.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query
from fastapi.responses import FileResponse

from crowdsky import stacks
from crowdsky.server import stack_files
from crowdsky.server.deps import DbSession, State
from crowdsky.server.schemas.worker_api import ErrorResponse
from crowdsky.server.user_auth import AuthenticatedUser

router = APIRouter(tags=["app and bot API"])
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed request"},
    401: {"model": ErrorResponse, "description": "Missing or wrong credentials"},
    404: {"model": ErrorResponse, "description": "No such stack of the caller, or no file"},
}
MAX_STACK_ID = 2**63 - 1
ChunkKey = Annotated[str, Query(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z._+-]+$")]
StackId = Annotated[int, Query(ge=1, le=MAX_STACK_ID, description="Stack id")]


def download_stack(
    state: State,
    session: DbSession,
    user: AuthenticatedUser,
    chunk_key: ChunkKey,
    telescope_id: Annotated[int | None, Query(ge=1, le=MAX_STACK_ID)] = None,
) -> FileResponse:
    """The caller's newest stack of a chunk key as a FITS stream, with
    ``Content-Disposition: attachment; filename="NAME"``."""
    record = stacks.find_user_stack(
        session, user_id=user.id, chunk_key=chunk_key, telescope_id=telescope_id
    )
    path = stack_files.local_file(state, record.ucloud_path)
    return stack_files.attachment(path, stack_files.file_name(record.ucloud_path))


def thumbnail(
    state: State, session: DbSession, user: AuthenticatedUser, id: StackId
) -> FileResponse:
    """The PNG preview of one of the caller's stacks."""
    record = stacks.get_user_stack(session, user_id=user.id, stack_id=id)
    path = stack_files.local_file(state, record.thumbnail_path)
    return FileResponse(path, media_type="image/png")


def stack_privacy(
    session: DbSession,
    user: AuthenticatedUser,
    private: Annotated[Literal["0", "1"], Form(description="1: private, 0: published")],
    id: Annotated[int | None, Form(ge=1, le=MAX_STACK_ID, description="Stack id")] = None,
) -> dict[str, Any]:
    """Mark one stack private or published; without ``id``, set the caller's default
    for new stacks. Private stacks never appear in the data API or the coverage."""
    flag = private == "1"
    if id is None:
        stacks.set_default_private(session, user_id=user.id, private=flag)
        return {"ok": True, "default_private": flag}
    stacks.set_stack_private(session, user_id=user.id, stack_id=id, private=flag)
    return {"ok": True, "id": id, "private": flag}


for _name, _handler, _method, _kwargs in (
    ("download_stack", download_stack, "GET", {"response_class": FileResponse}),
    ("thumbnail", thumbnail, "GET", {"response_class": FileResponse}),
    ("stack_privacy", stack_privacy, "POST", {}),
):
    for _url in (f"/api/{_name}.php", f"/api/{_name}"):
        router.add_api_route(_url, _handler, methods=[_method], responses=ERRORS, **_kwargs)
router.add_api_route(
    "/thumbnail.php", thumbnail, methods=["GET"], responses=ERRORS, response_class=FileResponse
)
