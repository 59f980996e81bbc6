"""Annotated FastAPI dependencies: handlers take these and never open sessions themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from crowdsky.server.auth import WorkerPrincipal, require_worker
from crowdsky.server.state import ServerState


async def get_state(request: Request) -> ServerState:
    """The process-wide server state created in the app's lifespan."""
    state: ServerState = request.app.state.crowdsky
    return state


async def get_db_session(
    state: Annotated[ServerState, Depends(get_state)],
) -> AsyncIterator[Session]:
    """One database session per request; transitions run their own transactions in it.

    Async because creating and closing a session does no I/O here (every transaction
    ends inside the domain function), which saves a thread hop per request.
    """
    session = state.session_factory()
    try:
        yield session
    finally:
        session.close()


State = Annotated[ServerState, Depends(get_state)]
DbSession = Annotated[Session, Depends(get_db_session)]
AuthenticatedWorker = Annotated[WorkerPrincipal, Depends(require_worker)]
