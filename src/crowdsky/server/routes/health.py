"""Liveness and readiness for load balancers and systemd checks."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from crowdsky import __version__
from crowdsky.server.deps import State

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness and database readiness")
def healthz(state: State) -> Any:
    """``{"ok": true}`` when the database answers; 503 otherwise."""
    try:
        with state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not ready"
        return JSONResponse(
            {"ok": False, "error": f"database unavailable: {type(exc).__name__}"},
            status_code=503,
        )
    return {"ok": True, "version": __version__}
