"""The spec's ``/api/<name>.php`` paths and their clean aliases, registered as one.

Every endpoint of the original PHP service keeps its ``.php`` path (clients in the
field call it) and is also served at ``/api/<name>``; this module is the one place
that pairs them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

__all__ = ["add_php_route", "php_paths"]


def php_paths(name: str) -> tuple[str, str]:
    """``/api/<name>.php`` and its alias ``/api/<name>``."""
    return (f"/api/{name}.php", f"/api/{name}")


def add_php_route(router: APIRouter, name: str, handler: Callable[..., Any], **route: Any) -> None:
    """Register ``handler`` at both :func:`php_paths` of ``name`` (``route``: FastAPI's
    ``add_api_route`` keywords, e.g. ``methods``, ``responses``)."""
    for url in php_paths(name):
        router.add_api_route(url, handler, **route)
