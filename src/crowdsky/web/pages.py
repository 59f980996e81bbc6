"""The HTML pages and their forms: splash, register, log in/out, password, the app pages.

Every page is rendered by Jinja2 with autoescaping; forms that change state carry the
CSRF token, and a wrong token is refused before anything else is read.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader
from starlette.concurrency import run_in_threadpool

from crowdsky.accounts import (
    AccountError,
    UserInfo,
    create_api_key,
    create_user,
    list_api_keys,
    login_fingerprint,
    revoke_api_key,
)
from crowdsky.accounts.users import MIN_PASSWORD_CHARS, hash_password
from crowdsky.db.types import utcnow
from crowdsky.server.auth import TooManyAttempts
from crowdsky.server.user_auth import password_login
from crowdsky.web import queries
from crowdsky.web.config import SESSION_MAX_AGE_S
from crowdsky.web.cookies import CSRF_COOKIE, CSRF_FIELD, SESSION_COOKIE, CookieSigner
from crowdsky.web.identity import csrf_ok, session_user, web_state
from crowdsky.web.passwords import RULE, password_problem

router = APIRouter(include_in_schema=False)
templates = Environment(
    loader=PackageLoader("crowdsky.web", "templates"), autoescape=True, auto_reload=False
)
MAX_FORM_FIELD = 4096
KEY_EXPIRY_CHOICES = {"30": 30, "90": 90, "365": 365, "never": None}
assert MIN_PASSWORD_CHARS <= 10  # the web rule is stricter than the account minimum


def _csrf_cookie(request: Request) -> tuple[str, bool]:
    """This browser's CSRF cookie, or a new one (and whether it must be set)."""
    value = request.cookies.get(CSRF_COOKIE)
    if value and 16 <= len(value) <= 64:
        return value, False
    return CookieSigner.new_csrf_cookie(), True


def render(
    request: Request,
    template: str,
    user: UserInfo | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page with the navigation, the CSRF token and ``context``."""
    web = web_state(request)
    csrf_value, new = _csrf_cookie(request)
    html = templates.get_template(template).render(
        user=user,
        is_admin=user is not None and web.is_admin(user),
        csrf_token=web.signer.csrf_token(csrf_value),
        csrf_field=CSRF_FIELD,
        path=request.url.path,
        **context,
    )
    response = HTMLResponse(html, status_code=status_code)
    response.headers["cache-control"] = "no-store"
    if new:
        _set_cookie(request, response, CSRF_COOKIE, csrf_value)
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        max_age=SESSION_MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=web_state(request).settings.secure_cookies,
        path="/",
    )


def _login_redirect(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)


def _safe_next(target: str | None) -> str:
    """Only same-site paths (``/x``, never ``//host`` or a URL) may be redirect targets."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/stacks"


async def _form(request: Request) -> dict[str, str] | None:
    """The form fields, or None when the CSRF token is missing or wrong."""
    form = await request.form(max_files=0, max_fields=64, max_part_size=MAX_FORM_FIELD)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    if not csrf_ok(request, fields.get(CSRF_FIELD, "")):
        return None
    return fields


def _csrf_refused(request: Request, user: UserInfo | None) -> HTMLResponse:
    return render(
        request,
        "message.html",
        user,
        status_code=403,
        title="Form expired",
        message="This form was stale or came from another site. Reload the page and try again.",
    )


def _log_in(request: Request, response: Response, user: UserInfo) -> Response:
    web = web_state(request)
    with request.app.state.crowdsky.session_factory() as session:
        fingerprint = login_fingerprint(session, user.id) or ""
    _set_cookie(request, response, SESSION_COOKIE, web.signer.session_cookie(user.id, fingerprint))
    # a fresh CSRF cookie at every login: a token learnt before login is worthless after
    _set_cookie(request, response, CSRF_COOKIE, CookieSigner.new_csrf_cookie())
    return response


# -- public pages ------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def splash(request: Request) -> HTMLResponse:
    """What CrowdSky is, with the public sky coverage."""
    return render(request, "splash.html", session_user(request))


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    """The log-in form."""
    return render(request, "login.html", session_user(request), next=_safe_next(next))


@router.post("/login")
async def login_submit(request: Request) -> Response:
    """Log in by user name or e-mail."""
    fields = await _form(request)
    if fields is None:
        return _csrf_refused(request, None)
    login = fields.get("login", "").strip()
    password = fields.get("password", "")
    target = _safe_next(fields.get("next"))
    try:
        user = await _check_password(request, login, password)
    except TooManyAttempts as exc:
        response = render(
            request,
            "login.html",
            None,
            status_code=429,
            error=f"Too many attempts; try again in {max(1, round(exc.retry_after_s))} s.",
            login=login,
            next=target,
        )
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
        return response
    if user is None:
        return render(
            request,
            "login.html",
            None,
            status_code=401,
            error="Wrong user name, e-mail or password.",
            login=login,
            next=target,
        )
    return _log_in(request, RedirectResponse(target, status_code=303), user)


@router.get("/register", response_class=HTMLResponse)
def register_page(request: Request) -> HTMLResponse:
    """The registration form."""
    return render(request, "register.html", session_user(request), rule=RULE)


@router.post("/register")
async def register_submit(request: Request) -> Response:
    """Create an account and log it in."""
    fields = await _form(request)
    if fields is None:
        return _csrf_refused(request, None)
    username = fields.get("username", "").strip()
    email = fields.get("email", "").strip()
    password = fields.get("password", "")
    problem = password_problem(password, username)
    if problem is None and password != fields.get("password2", ""):
        problem = "The two passwords differ."
    user = None
    if problem is None:

        def create() -> UserInfo:
            with request.app.state.crowdsky.session_factory() as session:
                return create_user(
                    session, utcnow(), username=username, email=email, password=password
                )

        try:
            user = await run_in_threadpool(create)
        except AccountError as exc:
            problem = str(exc).capitalize() + "."
    if user is None:
        return render(
            request,
            "register.html",
            None,
            status_code=400,
            error=problem,
            rule=RULE,
            username=username,
            email=email,
        )
    return _log_in(request, RedirectResponse("/upload", status_code=303), user)


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session."""
    fields = await _form(request)
    if fields is None:
        return _csrf_refused(request, None)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


# -- pages for a logged-in user -----------------------------------------------------------


def _page(name: str, template: str, admin: bool = False) -> None:
    def page(request: Request) -> Response:
        user = session_user(request)
        if user is None:
            return _login_redirect(request)
        if admin and not web_state(request).is_admin(user):
            return render(
                request,
                "message.html",
                user,
                status_code=403,
                title="Operations",
                message="This page is for administrators.",
            )
        limit = request.app.state.crowdsky.settings.max_upload_bytes
        return render(request, template, user, max_upload_bytes=limit)

    page.__name__ = f"{name}_page"
    router.add_api_route(f"/{name}", page, methods=["GET"], response_class=HTMLResponse)


for _name in ("upload", "jobs", "stacks"):
    _page(_name, f"{_name}.html")
_page("ops", "ops.html", admin=True)


def _account(request: Request, user: UserInfo, **extra: Any) -> HTMLResponse:
    with request.app.state.crowdsky.session_factory() as session:
        keys = list_api_keys(session, username=user.username)
        prefs = queries.preferences(session, user.id)
        scopes = queries.telescopes_seen(session, user.id)
    now = utcnow()
    return render(
        request,
        "account.html",
        user,
        keys=keys,
        prefs=prefs,
        telescopes=scopes,
        now=now,
        rule=RULE,
        status_code=extra.pop("status_code", 200),
        **extra,
    )


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request, changed: str | None = None) -> Response:
    """API keys, telescopes seen, defaults, password change."""
    user = session_user(request)
    if user is None:
        return _login_redirect(request)
    if changed == "password":
        return _account(request, user, notice="Password changed; other sessions are logged out.")
    return _account(request, user)


@router.post("/account")
async def account_submit(request: Request) -> Response:
    """One of the account forms, named by the ``action`` field."""
    user = await run_in_threadpool(session_user, request)
    if user is None:
        return _login_redirect(request)
    fields = await _form(request)
    if fields is None:
        return _csrf_refused(request, user)
    if fields.get("action") == "password":  # awaits the shared, throttled password check
        return await _change_password(request, user, fields)
    return await run_in_threadpool(_account_action, request, user, fields)


def _account_action(request: Request, user: UserInfo, fields: dict[str, str]) -> Response:
    action = fields.get("action")
    factory = request.app.state.crowdsky.session_factory
    now = utcnow()
    try:
        if action == "create_key":
            days = KEY_EXPIRY_CHOICES.get(fields.get("expiry", "90"), 90)
            with factory() as session:
                issued = create_api_key(
                    session,
                    now,
                    username=user.username,
                    name=fields.get("name", "").strip(),
                    expires_in=timedelta(days=days) if days else None,
                )
            return _account(request, user, new_key=issued)
        if action == "revoke_key":
            with factory() as session:
                revoke_api_key(session, now, username=user.username, name=fields.get("name", ""))
            return _account(request, user, notice="Key revoked.")
        if action == "preferences":
            with factory() as session:
                queries.set_preferences(
                    session,
                    now,
                    user.id,
                    stacks_public=fields.get("stacks_public") == "1",
                    scrub_location=fields.get("scrub_location") == "1",
                )
            return _account(request, user, notice="Defaults saved.")
    except AccountError as exc:
        return _account(request, user, error=str(exc), status_code=400)
    return _account(request, user, error="Unknown action.", status_code=400)


async def _check_password(request: Request, login: str, password: str) -> UserInfo | None:
    """The API's password check (cache, throttle, hashing slots) for the web forms."""
    address = request.client.host if request.client else "unknown"
    guard = request.app.state.login_guard
    return await password_login(guard, request.app.state.crowdsky, login, password, address)


async def _change_password(request: Request, user: UserInfo, fields: dict[str, str]) -> Response:
    try:
        current = await _check_password(request, user.username, fields.get("current", ""))
    except TooManyAttempts as exc:
        error = str(exc).capitalize() + "."
        return await run_in_threadpool(_account, request, user, error=error, status_code=429)
    return await run_in_threadpool(_set_password, request, user, fields, current is not None)


def _set_password(
    request: Request, user: UserInfo, fields: dict[str, str], current_ok: bool
) -> Response:
    state = request.app.state.crowdsky
    if not current_ok:
        return _account(request, user, error="The current password is wrong.", status_code=400)
    new = fields.get("password", "")
    problem = password_problem(new, user.username)
    if problem is None and new != fields.get("password2", ""):
        problem = "The two new passwords differ."
    if problem:
        return _account(request, user, error=problem, status_code=400)
    with state.session_factory() as session:
        queries.change_password(session, utcnow(), user.id, hash_password(new))
    # a redirect, not a page: the page's CSRF token would belong to the cookie replaced here
    return _log_in(request, RedirectResponse("/account?changed=password", status_code=303), user)
