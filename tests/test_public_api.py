"""Each package's public names: re-exported in a sorted ``__all__`` that resolves."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "crowdsky",
    "crowdsky.accounts",
    "crowdsky.astrometry",
    "crowdsky.db",
    "crowdsky.ingest",
    "crowdsky.queue",
    "crowdsky.server",
    "crowdsky.simulate",
    "crowdsky.stacking",
    "crowdsky.storage",
    "crowdsky.worker",
]


def _isort_key(name: str) -> tuple[int, str]:
    """Constants, then classes, then functions (ruff RUF022's isort-style order)."""
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=_isort_key), f"{name}.__all__ is not sorted"
    assert len(set(exported)) == len(exported)
    for attribute in exported:
        assert hasattr(module, attribute), f"{name}.{attribute} is listed but missing"
