"""The FastAPI application factory, used alike by ``crowdsky server`` and the tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import structlog
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from crowdsky import __version__
from crowdsky.cleanup import CleanupReport, run_cleanup
from crowdsky.config import ServerSettings
from crowdsky.db import create_db_engine, make_session_factory, prepare_sqlite
from crowdsky.db.migrate import SchemaNotCurrent, verify_schema
from crowdsky.db.types import utcnow
from crowdsky.server.body_limit import BodyLimitMiddleware
from crowdsky.server.docs_page import install_docs_page
from crowdsky.server.errors import install_error_handlers
from crowdsky.server.routes import (
    data_api,
    health,
    stacks_api,
    upload_api,
    user_api,
    worker_api,
)
from crowdsky.server.security_headers import SecurityHeadersMiddleware
from crowdsky.server.state import ServerState
from crowdsky.server.user_auth import install_login_guard
from crowdsky.storage import selection
from crowdsky.web import mount as mount_web

log = structlog.get_logger(__name__)

#: The OpenAPI entry of the body-limit middleware's answer.
TOO_LARGE = {
    "description": "The body is larger than allowed.",
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"error": {"type": "string"}}}
        }
    },
}

#: Room for the multipart envelope and form fields around an upload's file (bytes).
MULTIPART_OVERHEAD_BYTES = 256 * 1024


def create_app(settings: ServerSettings, *, migrate_sqlite: bool = True) -> FastAPI:
    """Build the CrowdSky server.

    Parameters
    ----------
    settings
        Server configuration; the database engine is created in the lifespan.
    migrate_sqlite
        Migrate an SQLite database to the newest schema on start (the embedded
        default needs no separate step); server databases use ``crowdsky db upgrade``.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await _open_state(settings, migrate_sqlite=migrate_sqlite)
        app.state.crowdsky = state
        housekeeping = asyncio.create_task(_housekeeping_loop(state))
        log.info(
            "server_started", database=state.engine.url.get_backend_name(), version=__version__
        )
        try:
            yield
        finally:
            housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await housekeeping
            _close_state(state)

    app = FastAPI(
        title="CrowdSky",
        version=__version__,
        summary="Crowd-sourced stacking of smart-telescope frames: worker and upload APIs.",
        lifespan=lifespan,
        docs_url=None,  # served from the package by install_docs_page: no CDN
        redoc_url=None,
    )
    install_docs_page(app, title="CrowdSky")
    install_login_guard(app.state, settings)
    _add_middleware(app, settings)
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    mount_web(app, settings)  # the web app: pages at /, data at /web/api, /static
    _document_body_limit(app)
    return app


#: The API surfaces, one router each.
ROUTERS = (
    health.router,
    worker_api.router,
    upload_api.router,
    user_api.router,
    stacks_api.router,
    data_api.router,
)


async def _open_state(settings: ServerSettings, *, migrate_sqlite: bool) -> ServerState:
    """Engine (SQLite prepared, schema verified), stores and claim slots of a server."""
    url = settings.resolved_database_url
    engine = create_db_engine(url)
    await run_in_threadpool(
        prepare_sqlite, url, settings.data_dir, engine=engine, migrate=migrate_sqlite
    )
    try:
        await run_in_threadpool(verify_schema, engine)
    except SchemaNotCurrent as exc:
        log.error("database_not_ready", error=str(exc))
        engine.dispose()
        raise
    raw_store = selection.open_raw_store(settings)
    result_store = selection.open_result_store(settings)
    return ServerState(
        settings=settings,
        engine=engine,
        session_factory=make_session_factory(engine),
        raw_store=raw_store,
        result_store=result_store,
        result_reader=selection.open_result_reader(settings, s3_store=result_store),
        claim_slots=asyncio.Semaphore(settings.claim_concurrency),
    )


def _close_state(state: ServerState) -> None:
    """Release what :func:`_open_state` opened."""
    state.engine.dispose()
    selection.close_raw_store(state.raw_store)
    if state.result_store is not None:
        state.result_store.close()
    else:
        state.result_reader.close()


def _add_middleware(app: FastAPI, settings: ServerSettings) -> None:
    """Body limits (the streaming paths get one file plus envelope), security headers."""
    upload_limit = settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
    app.add_middleware(
        BodyLimitMiddleware,
        limits=[
            ("/api/raw_upload", upload_limit),
            # a stack may come with its thumbnail
            ("/api/upload_stack", upload_limit + stacks_api.MAX_THUMBNAIL_BYTES),
        ],
    )
    app.add_middleware(SecurityHeadersMiddleware)


def _document_body_limit(app: FastAPI) -> None:
    """Every operation that takes a body may answer 413 (the body-limit middleware's
    reply): say so in the OpenAPI document, so clients and schema checks expect it."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            for operations in document.get("paths", {}).values():
                for method, operation in operations.items():
                    if method in ("post", "put", "patch"):
                        operation.setdefault("responses", {}).setdefault("413", TOO_LARGE)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _housekeeping_loop(state: ServerState) -> None:
    """Run cleanup periodically so expired leases and uploads never need a cron job."""
    interval = state.settings.cleanup_interval_seconds
    if interval <= 0:
        return
    while True:
        await asyncio.sleep(interval)
        try:
            report = await run_in_threadpool(_cleanup_once, state)
        except Exception as exc:  # housekeeping must never take the server down
            log.exception("cleanup_failed", error=str(exc))
            continue
        if report.reaped_jobs or report.expired_sessions or report.deleted_files:
            log.info("cleanup", summary=report.summary())


def _cleanup_once(state: ServerState) -> CleanupReport:
    settings = state.settings
    with state.session_factory() as session:
        report = run_cleanup(
            session,
            utcnow(),
            raw_store=state.raw_store,
            upload_expiry_hours=settings.upload_expiry_hours,
            failed_raw_retention_hours=settings.failed_raw_retention_hours,
            restack_window_hours=settings.restack_window_hours,
            backoff_seconds=settings.retry_backoff_seconds,
        )
    aborted = selection.abort_stale_uploads(state.raw_store, utcnow())
    if aborted:
        log.info("stale_uploads_aborted", count=aborted)
    return report
