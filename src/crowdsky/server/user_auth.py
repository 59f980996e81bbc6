"""User authentication for the upload API: HTTP Basic or ``Authorization: Bearer csk_...``.

Basic accepts the username or the email with the password (as the original's app
and bot sent them); Bearer takes a per-user API key. argon2 is deliberately slow
(tens of milliseconds), and an upload client sends one request per file, so a
successful Basic login is remembered for a short time under an HMAC of the
credentials with a per-process random key; the user's row is still read on every
request, so deactivation or a password change takes effect at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
import unicodedata
from typing import Annotated

from fastapi import Depends, Request

from crowdsky.accounts import (
    UserInfo,
    authenticate_api_key,
    authenticate_password,
    get_active_user,
    login_fingerprint,
)
from crowdsky.db.types import utcnow
from crowdsky.server.auth import NotAuthenticated
from crowdsky.web.identity import cookie_user

#: How long a verified Basic login is remembered (seconds).
LOGIN_CACHE_SECONDS = 300.0
LOGIN_CACHE_MAX_ENTRIES = 1024
#: No username (64) or email (255) is longer; longer logins are refused unread.
MAX_LOGIN_CHARS = 255


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


_cache = _LoginCache()


def require_user(request: Request) -> UserInfo:
    """Dependency: the active user behind the request's credentials, else 401."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    state = request.app.state.crowdsky
    if scheme.lower() == "bearer" and value:
        with state.session_factory() as session:
            user = authenticate_api_key(session, utcnow(), value)
    elif scheme.lower() == "basic" and value:
        user = _basic_login(state, value)
    elif not header:
        user = cookie_user(request)  # the web app's session cookie (+ CSRF header on writes)
    else:
        user = None
    if user is None:
        raise NotAuthenticated()
    return user


def _basic_login(state: object, encoded: str) -> UserInfo | None:
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except ValueError:  # not base64 (binascii.Error), non-ASCII header text, not UTF-8
        return None
    login, sep, password = decoded.partition(":")
    if not sep:
        return None
    return password_login(state, login, password)


def password_login(state: object, login: str, password: str) -> UserInfo | None:
    """The active user for a username-or-email and password: the one check that the API's
    Basic auth and the web app's login form share (and any throttling with them)."""
    if not login or not password or not _could_be_login(login):
        return None
    digest = _cache.digest(login, password)
    session_factory = state.session_factory  # type: ignore[attr-defined]
    with session_factory() as session:
        cached = _cache.get(digest)
        if cached is not None:
            user_id, fingerprint = cached
            if login_fingerprint(session, user_id) == fingerprint:
                return get_active_user(session, user_id)
        user = authenticate_password(session, login, password)
        if user is not None:
            current = login_fingerprint(session, user.id)
            if current is not None:
                _cache.put(digest, user.id, current)
        return user


def _could_be_login(login: str) -> bool:
    """Whether ``login`` could name an account: no username or email is longer or holds
    control characters (PostgreSQL could not even compare a login holding NUL)."""
    return len(login) <= MAX_LOGIN_CHARS and not any(
        unicodedata.category(char) == "Cc" for char in login
    )


AuthenticatedUser = Annotated[UserInfo, Depends(require_user)]
