"""The CrowdSky web application: server-rendered pages, their JSON endpoints, static files.

:func:`mount` adds it to the FastAPI app: the pages at ``/``, data at ``/web/api``,
static files (with the vendored browser libraries) at ``/static``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from crowdsky.config import ServerSettings
from crowdsky.web.config import SESSION_MAX_AGE_S, WebSettings, signing_key
from crowdsky.web.cookies import CookieSigner
from crowdsky.web.identity import WebState

STATIC_DIR = Path(__file__).parent / "static"

__all__ = ["STATIC_DIR", "mount"]


def mount(app: FastAPI, settings: ServerSettings, web: WebSettings | None = None) -> None:
    """Serve the web app from ``app`` (``server.security_headers`` covers its pages)."""
    from crowdsky.web import api, pages

    web = web or WebSettings()
    app.state.crowdsky_web = WebState(
        settings=web,
        signer=CookieSigner(
            # read at the first request, once the lifespan has opened the database
            lambda: signing_key(web, app.state.crowdsky.session_factory, settings.data_dir),
            SESSION_MAX_AGE_S,
        ),
        data_dir=settings.data_dir,
    )
    app.include_router(pages.router)
    app.include_router(api.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
