"""Security headers on every response, ready for the web pages to come.

Every answer says ``nosniff`` (a browser never guesses a JSON error or a raw FITS
download to be HTML or script), may not be framed, sends no referrer, and carries a
strict Content-Security-Policy: nothing may load, run or be framed unless a response
sets a policy of its own. The web app's HTML pages get :data:`PAGE_CSP`: scripts,
styles and images from this origin only (no inline script, no eval, no CDN). The
interactive API docs (``/docs``, Swagger UI vendored in the package) may also take
inline styles, which Swagger UI sets on its elements; their scripts come from here too.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The default policy: no source of anything, no framing, no forms, no <base>.
STRICT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
#: HTML pages of the web app: everything from this origin, nothing inline.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect"})
BASE_HEADERS = (
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-resource-policy", "same-origin"),
)


class SecurityHeadersMiddleware:
    """Add the security headers to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"] in DOCS_PATHS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                html = headers.get("content-type", "").startswith("text/html")
                policy = DOCS_CSP if docs else PAGE_CSP if html else STRICT_CSP
                for name, value in (*BASE_HEADERS, ("content-security-policy", policy)):
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
