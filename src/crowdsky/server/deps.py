"""Annotated FastAPI dependencies: handlers take these and never open sessions themselves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from crowdsky.server.auth import WorkerPrincipal, require_worker
from crowdsky.server.state import ServerState


def get_state(request: Request) -> ServerState:
    """The process-wide server state created in the app's lifespan."""
    state: ServerState = request.app.state.crowdsky
    return state


def get_db_session(state: Annotated[ServerState, Depends(get_state)]) -> Iterator[Session]:
    """One database session per request; transitions run their own transactions in it."""
    with state.session_factory() as session:
        yield session


State = Annotated[ServerState, Depends(get_state)]
DbSession = Annotated[Session, Depends(get_db_session)]
AuthenticatedWorker = Annotated[WorkerPrincipal, Depends(require_worker)]
