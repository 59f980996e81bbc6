"""Signed session cookies and CSRF tokens.

A session cookie is ``<base64 JSON>.<base64 HMAC-SHA256>`` holding the user id, a
fingerprint of the password hash (a password change ends every other session) and
the issue time. CSRF uses a random per-browser cookie; pages carry
``HMAC(key, "csrf:" + cookie)`` in forms and in ``<meta name="csrf-token">``, and every
state-changing request must send it back (form field ``csrf_token`` or header
``X-CSRF-Token``). Both cookies are ``HttpOnly`` and ``SameSite=Lax``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

SESSION_COOKIE = "crowdsky_session"
CSRF_COOKIE = "crowdsky_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class SessionData:
    """What a valid session cookie says."""

    user_id: int
    fingerprint: str
    issued_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CookieSigner:
    """Signs and verifies session cookies and CSRF tokens with one key."""

    def __init__(self, key: bytes | Callable[[], bytes], max_age_s: float) -> None:
        # A callable key is read on first use: building the app does no file I/O.
        self._key_source = key
        self.max_age_s = max_age_s

    @functools.cached_property
    def _key(self) -> bytes:
        source = self._key_source
        key = source() if callable(source) else source
        return hashlib.sha256(b"crowdsky-web\x00" + key).digest()

    def _mac(self, purpose: str, payload: bytes) -> bytes:
        return hmac.new(self._key, purpose.encode() + b"\x00" + payload, hashlib.sha256).digest()

    def session_cookie(self, user_id: int, fingerprint: str) -> str:
        """A cookie value for a fresh login."""
        body = json.dumps(
            {"u": user_id, "f": fingerprint[:32], "t": int(time.time())}, separators=(",", ":")
        ).encode()
        return f"{_b64(body)}.{_b64(self._mac('session', body))}"

    def read_session(self, value: str | None) -> SessionData | None:
        """The session in a cookie value, or None if absent, forged or expired."""
        if not value or len(value) > 512 or "." not in value:
            return None
        body_text, _, mac_text = value.partition(".")
        try:
            body = _unb64(body_text)
            mac = _unb64(mac_text)
        except ValueError:
            return None
        if not hmac.compare_digest(mac, self._mac("session", body)):
            return None
        try:
            data = json.loads(body)
            session = SessionData(int(data["u"]), str(data["f"]), float(data["t"]))
        except (ValueError, KeyError, TypeError):
            return None
        if time.time() - session.issued_at > self.max_age_s:
            return None
        return session

    @staticmethod
    def new_csrf_cookie() -> str:
        """A random value for the CSRF cookie."""
        return secrets.token_urlsafe(24)

    def csrf_token(self, csrf_cookie: str) -> str:
        """The token that pages embed for a CSRF cookie."""
        return _b64(self._mac("csrf", csrf_cookie.encode()))

    def check_csrf(self, csrf_cookie: str | None, presented: str | None) -> bool:
        """Whether ``presented`` is the token of this browser's CSRF cookie."""
        if not csrf_cookie or not presented or len(presented) > 128:
            return False
        return hmac.compare_digest(presented.encode(), self.csrf_token(csrf_cookie).encode())
