"""ASGI entry for multi-process serving: each uvicorn worker builds the app from the env."""

from __future__ import annotations

from fastapi import FastAPI

from crowdsky.config import load_server_settings
from crowdsky.server.app import create_app


def app_from_environment() -> FastAPI:
    """An app configured from environment variables and ``.env`` (uvicorn factory)."""
    return create_app(load_server_settings(), migrate_sqlite=False)
