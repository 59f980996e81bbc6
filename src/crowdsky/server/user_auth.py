"""User authentication: HTTP Basic (user name or e-mail) or ``Authorization: Bearer csk_...``.

A password check is an argon2 hash, costly on purpose, so :class:`LoginGuard` keeps
an attacker from making the server pay for it: a successful Basic login is
remembered for ``LOGIN_CACHE_SECONDS`` under an HMAC of the credentials (checked
against the user's row on every use); attempts are throttled per name and address
(:mod:`crowdsky.accounts.throttle`); at most ``login_hash_concurrency`` hashes run and
``MAX_QUEUED_LOGINS`` wait, the rest get ``429``; every refusal waits
``REFUSED_LOGIN_DELAY_S``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from crowdsky.accounts import (
    UserInfo,
    authenticate_api_key,
    authenticate_password,
    get_active_user,
    login_fingerprint,
    throttle_name,
)
from crowdsky.accounts.db_throttle import DatabaseLoginThrottle
from crowdsky.accounts.throttle import LoginThrottle, MemoryLoginThrottle
from crowdsky.config import ServerSettings
from crowdsky.db.types import utcnow
from crowdsky.server.auth import NotAuthenticated, TooManyAttempts
from crowdsky.web.identity import cookie_user

#: How long a verified Basic login is remembered (seconds).
LOGIN_CACHE_SECONDS = 300.0
LOGIN_CACHE_MAX_ENTRIES = 1024
#: No username (64) or email (255) is longer; longer logins are refused unread.
MAX_LOGIN_CHARS = 255
#: Password checks waiting for a hashing slot; more get 429 at once.
MAX_QUEUED_LOGINS = 16
#: Retry-After sent when the hashing queue is full (seconds).
BUSY_RETRY_AFTER_S = 2.0
#: A refused Basic login (wrong, throttled or queue full) is answered after this long:
#: waiting costs the server a sleeping coroutine, and slows a client that retries at
#: once from hundreds of requests a second to one per connection a second.
REFUSED_LOGIN_DELAY_S = 1.0


class _LoginCache:
    """Recently verified (login, password) pairs -> (user id, password hash, expiry)."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._entries: dict[bytes, tuple[int, str, float]] = {}
        self._lock = threading.Lock()

    def digest(self, login: str, password: str) -> bytes:
        message = login.encode("utf-8") + b"\x00" + password.encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def get(self, digest: bytes) -> tuple[int, str] | None:
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None or entry[2] < time.monotonic():
                self._entries.pop(digest, None)
                return None
            return entry[0], entry[1]

    def put(self, digest: bytes, user_id: int, fingerprint: str) -> None:
        with self._lock:
            if len(self._entries) >= LOGIN_CACHE_MAX_ENTRIES:
                self._entries.clear()
            self._entries[digest] = (user_id, fingerprint, time.monotonic() + LOGIN_CACHE_SECONDS)


class LoginGuard:
    """Per-process state of Basic logins: verified-login cache, throttle, hashing slots."""

    def __init__(self, *, hash_concurrency: int, throttle: LoginThrottle) -> None:
        self.cache = _LoginCache()
        self.throttle = throttle
        self._slots = asyncio.Semaphore(hash_concurrency)
        self._queued = 0

    @classmethod
    def from_settings(
        cls, settings: ServerSettings, session_factory: Callable[[], Session]
    ) -> LoginGuard:
        """The guard a server process uses: the database throttle unless configured
        ``memory``; ``session_factory`` is called per throttle operation."""
        limits = {
            "failures_per_account": settings.login_failures_per_account,
            "failures_per_address": settings.login_failures_per_address,
            "window_seconds": settings.login_throttle_seconds,
        }
        throttle: LoginThrottle
        if settings.login_throttle == "memory":
            throttle = MemoryLoginThrottle(**limits)
        else:
            throttle = DatabaseLoginThrottle(session_factory, **limits)
        return cls(hash_concurrency=settings.login_hash_concurrency, throttle=throttle)

    async def verify(self, state: object, login: str, password: str) -> UserInfo | None:
        """Check a password in a hashing slot (a worker thread); 429 when the queue is full."""
        if self._queued >= MAX_QUEUED_LOGINS:
            raise TooManyAttempts(BUSY_RETRY_AFTER_S)
        self._queued += 1
        try:
            async with self._slots:
                return await run_in_threadpool(self._check_password, state, login, password)
        finally:
            self._queued -= 1

    def _check_password(self, state: object, login: str, password: str) -> UserInfo | None:
        session_factory = state.session_factory  # type: ignore[attr-defined]
        with session_factory() as session:
            user = authenticate_password(session, login, password)
            if user is not None:
                current = login_fingerprint(session, user.id)
                if current is not None:
                    self.cache.put(self.cache.digest(login, password), user.id, current)
            return user


def install_login_guard(app_state: object, settings: ServerSettings) -> None:
    """Give an app its login guard (called by the app factory, before the lifespan
    has opened the database: the throttle opens its sessions when first used)."""

    def open_session() -> Session:
        return app_state.crowdsky.session_factory()  # type: ignore[attr-defined, no-any-return]

    app_state.login_guard = LoginGuard.from_settings(settings, open_session)  # type: ignore[attr-defined]


async def require_user(request: Request) -> UserInfo:
    """Dependency: the active user behind the request's credentials, else 401 (or 429)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    state = request.app.state.crowdsky
    user: UserInfo | None = None
    if scheme.lower() == "bearer" and value:
        user = await run_in_threadpool(_api_key_user, state, value)
    elif scheme.lower() == "basic" and value:
        address = request.client.host if request.client else "unknown"
        try:
            user = await _basic_login(request.app.state.login_guard, state, value, address)
        except TooManyAttempts:
            await asyncio.sleep(REFUSED_LOGIN_DELAY_S)
            raise
        if user is None:
            await asyncio.sleep(REFUSED_LOGIN_DELAY_S)
    elif not header:
        user = cookie_user(request)  # the web app's session cookie (+ CSRF header on writes)
    if user is None:
        raise NotAuthenticated()
    return user


def _api_key_user(state: object, key: str) -> UserInfo | None:
    with state.session_factory() as session:  # type: ignore[attr-defined]
        return authenticate_api_key(session, utcnow(), key)


async def _basic_login(
    guard: LoginGuard, state: object, encoded: str, address: str
) -> UserInfo | None:
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except ValueError:  # not base64 (binascii.Error), non-ASCII header text, not UTF-8
        return None
    login, sep, password = decoded.partition(":")
    if not sep:
        return None
    return await password_login(guard, state, login, password, address)


async def password_login(
    guard: LoginGuard, state: object, login: str, password: str, address: str
) -> UserInfo | None:
    """The active user for a username-or-email and password: the one check that the API's
    Basic auth and the web app's login form share, with its cache, throttle and hashing
    slots (raises :class:`TooManyAttempts` while the account or address is throttled)."""
    if not login or not password or not _could_be_login(login):
        return None
    cached = guard.cache.get(guard.cache.digest(login, password))
    if cached is not None:
        user = await run_in_threadpool(_remembered_user, state, *cached)
        if user is not None:
            return user
    # The attempt is counted before the hash (and given back on success): requests
    # arriving together on one server or many cannot all pass before one is counted.
    # Username and email of one account count as one name.
    account = await run_in_threadpool(_throttle_name, state, login)
    wait = await run_in_threadpool(guard.throttle.acquire, account, address, time.time())
    if wait > 0:
        raise TooManyAttempts(wait)
    user = await guard.verify(state, login, password)
    if user is not None:
        await run_in_threadpool(guard.throttle.record_success, account, address, time.time())
    return user


def _throttle_name(state: object, login: str) -> str:
    with state.session_factory() as session:  # type: ignore[attr-defined]
        return throttle_name(session, login)


def _remembered_user(state: object, user_id: int, fingerprint: str) -> UserInfo | None:
    """The cached login's user, if its password is unchanged and it is still active."""
    with state.session_factory() as session:  # type: ignore[attr-defined]
        if login_fingerprint(session, user_id) == fingerprint:
            return get_active_user(session, user_id)
    return None


def _could_be_login(login: str) -> bool:
    """Whether ``login`` could name an account: no username or email is longer or holds
    control characters (PostgreSQL could not even compare a login holding NUL)."""
    return len(login) <= MAX_LOGIN_CHARS and not any(
        unicodedata.category(char) == "Cc" for char in login
    )


AuthenticatedUser = Annotated[UserInfo, Depends(require_user)]
