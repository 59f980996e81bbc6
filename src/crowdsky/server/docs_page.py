"""``/docs``: the Swagger UI page, served with its assets from the package (no CDN).

FastAPI's default page loads Swagger UI's JavaScript and CSS from a CDN, which leaves
a blank page offline or behind a firewall. The assets (swagger-ui-dist, Apache-2.0,
licence and notice beside them) are vendored in ``static/swagger-ui/`` by
``scripts/fetch-swagger-ui``, which checks the npm tarball's SHA-512. The page starts
Swagger UI from a script of its own (``/docs-init.js``), not an inline one, so the
docs keep a Content-Security-Policy without ``'unsafe-inline'`` scripts.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS_DIR = Path(__file__).parent / "static" / "swagger-ui"
ASSETS_URL = "/docs-assets"
INIT_URL = "/docs-init.js"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css"></head>
<body><div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script><script src="{init}"></script>
</body></html>
"""
INIT_SCRIPT = """window.ui = SwaggerUIBundle({
  url: document.getElementById("swagger-ui").dataset.openapiUrl,
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
"""


def install_docs_page(app: FastAPI, *, title: str) -> None:
    """Serve ``/docs`` and its assets; call with ``FastAPI(docs_url=None, redoc_url=None)``."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    page = PAGE.format(
        title=escape(f"{title} API"),
        assets=ASSETS_URL,
        openapi=escape(app.openapi_url or "/openapi.json"),
        init=INIT_URL,
    )

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get(INIT_URL, include_in_schema=False)
    def swagger_ui_init() -> Response:
        return Response(INIT_SCRIPT, media_type="text/javascript")
