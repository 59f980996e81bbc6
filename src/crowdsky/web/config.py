"""Settings of the web application, read once when the app is built.

``CROWDSKY_WEB_SECRET`` signs session cookies; without it a random key is created once
in ``<data dir>/web-secret.key`` (mode 0600), so every server process of a deployment
shares it and sessions survive restarts. ``CROWDSKY_RESULTS_DIR`` is the folder of a
local result store (``RESULT_STORE=local``) from which stacks and thumbnails are served.
``CROWDSKY_ADMIN_USERS`` names the users who see the operations page.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_FILE_NAME = "web-secret.key"
#: How long a login lasts without activity (seconds).
SESSION_MAX_AGE_S = 14 * 24 * 3600


class WebSettings(BaseSettings):
    """Environment of the web app (prefix ``CROWDSKY_``)."""

    model_config = SettingsConfigDict(env_prefix="CROWDSKY_", extra="ignore")

    web_secret: SecretStr | None = Field(default=None, description="Cookie signing key")
    results_dir: Path | None = Field(default=None, description="Local result store root")
    admin_users: str = Field(default="", description="Comma-separated admin user names")
    secure_cookies: bool = Field(default=False, description="Mark cookies Secure (HTTPS)")

    @property
    def admins(self) -> frozenset[str]:
        """The admin user names."""
        return frozenset(n.strip() for n in self.admin_users.split(",") if n.strip())


def signing_key(settings: WebSettings, data_dir: Path) -> bytes:
    """The cookie signing key: configured, or created once in the data dir."""
    if settings.web_secret is not None:
        return settings.web_secret.get_secret_value().encode("utf-8")
    path = data_dir / SECRET_FILE_NAME
    data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    key = path.read_text().strip()
    if len(key) < 32:  # a concurrent creator has not written yet, or a damaged file
        raise RuntimeError(f"{path} holds no usable key; delete it to create a new one")
    return key.encode("utf-8")
