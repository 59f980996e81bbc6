"""``/docs``: the Swagger UI page, served with its assets from the package (no CDN).

FastAPI's default page loads Swagger UI's JavaScript and CSS from a CDN, which leaves
a blank page offline or behind a firewall. The assets (swagger-ui-dist, Apache-2.0,
licence and notice beside them) are vendored in ``static/swagger-ui/`` by
``scripts/fetch-swagger-ui``, which checks the npm tarball's SHA-512.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_DIR = Path(__file__).parent / "static" / "swagger-ui"
ASSETS_URL = "/docs-assets"


def install_docs_page(app: FastAPI, *, title: str) -> None:
    """Serve ``/docs`` and its assets; call with ``FastAPI(docs_url=None, redoc_url=None)``."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{title} API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png",
        )
