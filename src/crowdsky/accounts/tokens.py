"""Secret tokens: generated once, shown once, stored only as SHA-256.

Tokens are 256-bit random values, so a fast unsalted hash is safe for storage and
allows an indexed lookup (passwords, which are low-entropy, use argon2 instead).
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 32
PREFIX_CHARS = 12


def generate_token(prefix: str) -> str:
    """A new random token such as ``csw_3q...``; the prefix says what kind it is."""
    return f"{prefix}{secrets.token_urlsafe(TOKEN_BYTES)}"


def hash_token(token: str) -> str:
    """Hex SHA-256 of a token, the only form stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def display_prefix(token: str) -> str:
    """The first characters of a token, stored so a person can tell tokens apart."""
    return token[:PREFIX_CHARS]
