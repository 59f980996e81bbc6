"""Fixtures of the simulator tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def small_shape() -> tuple[int, int]:
    """A small even frame shape for fast tests (portrait like the S50)."""
    return (192, 128)
