"""Settings of the web application, read once when the app is built.

``CROWDSKY_WEB_SECRET`` signs session cookies; without it a random key is created once
in the database, so every server process of a deployment, on any host, shares it and
sessions survive restarts (stacks are read through the server's result store,
``CROWDSKY_RESULT_STORE`` / ``CROWDSKY_RESULTS_DIR``).
``CROWDSKY_ADMIN_USERS`` names the users who see the operations page.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.orm import Session, sessionmaker

from crowdsky.accounts import shared_signing_key
from crowdsky.db.types import utcnow

#: Where versions before the shared key kept it (adopted once, see :func:`signing_key`).
LEGACY_SECRET_FILE_NAME = "web-secret.key"
#: The name of the cookie key in ``signing_keys``.
COOKIE_KEY_NAME = "web-cookies"
#: How long a login lasts without activity (seconds).
SESSION_MAX_AGE_S = 14 * 24 * 3600


class WebSettings(BaseSettings):
    """Environment of the web app (prefix ``CROWDSKY_``)."""

    model_config = SettingsConfigDict(env_prefix="CROWDSKY_", extra="ignore")

    web_secret: SecretStr | None = Field(default=None, description="Cookie signing key")
    admin_users: str = Field(default="", description="Comma-separated admin user names")
    secure_cookies: bool = Field(default=False, description="Mark cookies Secure (HTTPS)")

    @property
    def admins(self) -> frozenset[str]:
        """The admin user names."""
        return frozenset(n.strip() for n in self.admin_users.split(",") if n.strip())


def signing_key(
    settings: WebSettings, session_factory: sessionmaker[Session], data_dir: Path
) -> bytes:
    """The cookie signing key: configured, or the deployment's key in the database.

    A key that an earlier version created in ``<data dir>/web-secret.key`` is adopted
    when the database has none yet, so upgrading logs no one out.
    """
    if settings.web_secret is not None:
        return settings.web_secret.get_secret_value().encode("utf-8")

    def earlier_key() -> str | None:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            return (data_dir / LEGACY_SECRET_FILE_NAME).read_text().strip()
        return None

    with session_factory() as session:
        key = shared_signing_key(session, utcnow(), COOKIE_KEY_NAME, adopt=earlier_key)
    return key.encode("utf-8")
