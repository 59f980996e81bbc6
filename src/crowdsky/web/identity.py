"""Who is behind a browser request: the signed session cookie, checked against the DB.

Shared by the web pages and the API (``server.user_auth`` accepts the cookie as a
credential when no ``Authorization`` header is sent); a state-changing request with
the cookie must also carry the CSRF token, so another site cannot ride the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request

from crowdsky.accounts import UserInfo, get_active_user, login_fingerprint
from crowdsky.web.config import WebSettings
from crowdsky.web.cookies import (
    CSRF_COOKIE,
    CSRF_HEADER,
    SAFE_METHODS,
    SESSION_COOKIE,
    CookieSigner,
)


@dataclass
class WebState:
    """What the web app holds for the process: settings and the cookie signer."""

    settings: WebSettings
    signer: CookieSigner
    data_dir: Path

    def is_admin(self, user: UserInfo) -> bool:
        """Whether ``user`` may see the operations page."""
        return user.username in self.settings.admins


def web_state(request: Request) -> WebState:
    """The web state of the app serving ``request``."""
    state: WebState = request.app.state.crowdsky_web
    return state


def session_user(request: Request) -> UserInfo | None:
    """The active user of the request's session cookie (no CSRF check), or None."""
    web = getattr(request.app.state, "crowdsky_web", None)
    if web is None:
        return None
    data = web.signer.read_session(request.cookies.get(SESSION_COOKIE))
    if data is None:
        return None
    with request.app.state.crowdsky.session_factory() as session:
        fingerprint = login_fingerprint(session, data.user_id)
        if fingerprint is None or fingerprint[:32] != data.fingerprint:
            return None
        return get_active_user(session, data.user_id)


def csrf_ok(request: Request, presented: str | None = None) -> bool:
    """Whether the request carries this browser's CSRF token (header or ``presented``)."""
    web = getattr(request.app.state, "crowdsky_web", None)
    if web is None:
        return False
    token = presented if presented is not None else request.headers.get(CSRF_HEADER)
    return web.signer.check_csrf(request.cookies.get(CSRF_COOKIE), token)


def cookie_user(request: Request) -> UserInfo | None:
    """The session user for the API: reads need the cookie, writes also the CSRF header."""
    if request.method not in SAFE_METHODS and not csrf_ok(request):
        return None
    return session_user(request)
