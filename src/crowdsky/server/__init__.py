"""The CrowdSky HTTP server: worker API, upload API, health."""

from __future__ import annotations

from crowdsky.server.app import create_app

__all__ = ["create_app"]
