"""User accounts and their API keys.

Passwords are hashed with argon2id (argon2-cffi's defaults); an unknown login costs
the same as a wrong password, so response times do not reveal which accounts exist.
API keys (prefix ``csk_``) are random 256-bit tokens, shown once and stored as
SHA-256 (see :mod:`crowdsky.accounts.tokens`), named per user, revocable, with an
optional expiry; a deactivated user's keys stop working with the user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crowdsky.accounts import tokens
from crowdsky.db.engine import affected_rows
from crowdsky.db.models import ApiKey, SlotLock, User

API_KEY_PREFIX = "csk_"
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
KEY_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$")
MIN_PASSWORD_CHARS = 8
#: ``last_used_at`` of an API key is refreshed at most this often (avoids a write per call).
LAST_USED_RESOLUTION = timedelta(minutes=1)

_hasher = PasswordHasher()
#: Verified against for unknown logins so they cost as much as a wrong password.
_DUMMY_HASH = _hasher.hash("crowdsky-timing-equaliser")


class AccountError(Exception):
    """An account operation was refused; the message says why."""


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A user without the password hash."""

    id: int
    username: str
    email: str
    is_active: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class IssuedApiKey:
    """A freshly created API key: the only time its secret is visible."""

    name: str
    key: str
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """A stored API key without its secret."""

    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


def hash_password(password: str) -> str:
    """An argon2id hash of a password."""
    return _hasher.hash(password)


def create_user(
    session: Session, now: datetime, *, username: str, email: str, password: str
) -> UserInfo:
    """Create an active user.

    Raises
    ------
    AccountError
        Invalid name, email or password, or the name or email is taken.
    """
    if not USERNAME_PATTERN.match(username) or "@" in username:
        raise AccountError(
            f"invalid username {username!r}: use 3-64 letters, digits, '.', '_' or '-'"
        )
    if not EMAIL_PATTERN.match(email) or len(email) > 255:
        raise AccountError(f"invalid email address {email!r}")
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"password too short: use at least {MIN_PASSWORD_CHARS} characters")
    password_hash = hash_password(password)
    try:
        with session.begin():
            taken = session.execute(
                select(User.username, User.email).where(
                    or_(User.username == username, User.email == email.lower())
                )
            ).first()
            if taken is not None:
                what = "username" if taken.username == username else "email"
                raise AccountError(f"{what} already registered")
            user = User(
                username=username,
                email=email.lower(),
                password_hash=password_hash,
                is_active=True,
                created_at=now,
                updated_at=now,
            )
            session.add(user)
            session.flush()
            # the row a finalize locks (ingest.slots.lock_user): made with the user, so
            # concurrent first finalizes never race to create it
            session.add(SlotLock(user_id=user.id))
            return _info(user)
    except IntegrityError as exc:
        raise AccountError("username or email already registered") from exc


def set_user_active(session: Session, now: datetime, username: str, active: bool) -> None:
    """Activate or deactivate a user (a deactivated user cannot log in or use keys)."""
    with session.begin():
        changed = affected_rows(
            session.execute(
                update(User)
                .where(User.username == username)
                .values(is_active=active, updated_at=now)
            )
        )
    if changed != 1:
        raise AccountError(f"no user {username!r}")


def list_users(session: Session) -> list[UserInfo]:
    """All users by name."""
    with session.begin():
        return [_info(u) for u in session.execute(select(User).order_by(User.username)).scalars()]


def authenticate_password(session: Session, login: str, password: str) -> UserInfo | None:
    """The active user whose username or email is ``login`` and whose password matches.

    Unknown logins verify against a dummy hash, so they take as long as a wrong password.
    The hash is verified outside any transaction: argon2 takes a few hundred
    milliseconds, and on SQLite an open transaction holds the database's write lock.
    """
    with session.begin():
        user = session.execute(
            select(User).where(or_(User.username == login, User.email == login.lower()))
        ).scalar_one_or_none()
        stored = user.password_hash if user is not None else _DUMMY_HASH
        info = _info(user) if user is not None else None
    try:
        _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if info is None or not info.is_active:
        return None
    if _hasher.check_needs_rehash(stored):
        rehashed = _hasher.hash(password)
        with session.begin():
            session.execute(
                update(User)
                .where(User.id == info.id, User.password_hash == stored)
                .values(password_hash=rehashed)
            )
    return info


def throttle_name(session: Session, login: str) -> str:
    """The name an account's login attempts are counted under: its username, whether
    the login gave the username or the email (so the two are one budget); an unknown
    login as given. Case-folded either way."""
    with session.begin():
        username = session.execute(
            select(User.username).where(or_(User.username == login, User.email == login.lower()))
        ).scalar_one_or_none()
    return (username or login).lower()


def create_api_key(
    session: Session,
    now: datetime,
    *,
    username: str,
    name: str,
    expires_in: timedelta | None = None,
) -> IssuedApiKey:
    """Mint a named API key for a user; the secret is returned once and never stored.

    Raises
    ------
    AccountError
        Unknown user, invalid name, or the user already has an active key of that name.
    """
    if not KEY_NAME_PATTERN.match(name):
        raise AccountError(f"invalid key name {name!r}: 1-64 letters, digits, ' ._@-'")
    secret = tokens.generate_token(API_KEY_PREFIX)
    expires_at = now + expires_in if expires_in is not None else None
    try:
        with session.begin():
            user_id = _user_id(session, username)
            existing = session.execute(
                select(ApiKey).where(ApiKey.user_id == user_id, ApiKey.name == name)
            ).scalar_one_or_none()
            if existing is not None:
                if existing.revoked_at is None and not _is_expired(existing, now):
                    raise AccountError(f"user {username!r} already has an active key {name!r}")
                session.delete(existing)
                session.flush()
            session.add(
                ApiKey(
                    user_id=user_id,
                    name=name,
                    key_hash=tokens.hash_token(secret),
                    key_prefix=tokens.display_prefix(secret),
                    created_at=now,
                    expires_at=expires_at,
                )
            )
    except IntegrityError as exc:
        raise AccountError(f"key {name!r} was created concurrently; try again") from exc
    return IssuedApiKey(name=name, key=secret, expires_at=expires_at)


def revoke_api_key(session: Session, now: datetime, *, username: str, name: str) -> None:
    """Revoke a user's key; it stops working at once.

    Raises
    ------
    AccountError
        Unknown user, no such key, or the key is already revoked or expired.
    """
    with session.begin():
        user_id = _user_id(session, username)
        key = session.execute(
            select(ApiKey).where(
                ApiKey.user_id == user_id, ApiKey.name == name, ApiKey.revoked_at.is_(None)
            )
        ).scalar_one_or_none()
        if key is not None and _is_expired(key, now):
            raise AccountError(
                f"key {name!r} of user {username!r} already expired "
                f"({key.expires_at:%Y-%m-%d %H:%M} UTC): it no longer works, nothing to revoke"
            )
        changed = 0
        if key is not None:
            changed = affected_rows(
                session.execute(
                    update(ApiKey)
                    .where(ApiKey.id == key.id, ApiKey.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
            )
    if changed != 1:
        raise AccountError(f"no active key {name!r} for user {username!r}")


def list_api_keys(session: Session, *, username: str) -> list[ApiKeyInfo]:
    """A user's keys, active and not, by name.

    Raises
    ------
    AccountError
        Unknown user.
    """
    with session.begin():
        user_id = _user_id(session, username)
        rows = session.execute(
            select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.name)
        ).scalars()
        return [
            ApiKeyInfo(
                r.name, r.key_prefix, r.created_at, r.expires_at, r.revoked_at, r.last_used_at
            )
            for r in rows
        ]


def authenticate_api_key(session: Session, now: datetime, key: str) -> UserInfo | None:
    """The active owner of a valid (not revoked, not expired) key, or None."""
    if not key.startswith(API_KEY_PREFIX):
        return None
    with session.begin():
        row = session.execute(
            select(ApiKey, User)
            .join(User, User.id == ApiKey.user_id)
            .where(ApiKey.key_hash == tokens.hash_token(key))
        ).first()
        if row is None:
            return None
        api_key, user = row
        if api_key.revoked_at is not None or _is_expired(api_key, now) or not user.is_active:
            return None
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            api_key.last_used_at = now
        return _info(user)


def _user_id(session: Session, username: str) -> int:
    """The id of a user by name (inside the caller's transaction)."""
    user_id = session.execute(select(User.id).where(User.username == username)).scalar_one_or_none()
    if user_id is None:
        raise AccountError(f"no user {username!r}")
    return user_id


def _is_expired(api_key: ApiKey, now: datetime) -> bool:
    return api_key.expires_at is not None and api_key.expires_at <= now


def _info(user: User) -> UserInfo:
    return UserInfo(user.id, user.username, user.email, bool(user.is_active), user.created_at)


def login_fingerprint(session: Session, user_id: int) -> str | None:
    """A value that changes whenever the user's password changes (None if inactive).

    Lets a server remember a verified login without keeping or re-verifying the
    password: the remembered login is valid only while the fingerprint is unchanged.
    """
    with session.begin():
        row = session.get(User, user_id)
        if row is None or not row.is_active:
            return None
        return tokens.hash_token(row.password_hash)


def get_active_user(session: Session, user_id: int) -> UserInfo | None:
    """An active user by id, or None."""
    with session.begin():
        row = session.get(User, user_id)
        return _info(row) if row is not None and row.is_active else None
