"""Dependencies point inward: a test parses every module and fails on a forbidden import.

Rules (style.md §5.1–5.2):
- ``stacking`` and ``simulate`` import only the standard library, the scientific stack
  and themselves (``stacking`` may read ``crowdsky.__version__``); ``ingest.chunking``
  and ``healpix`` are pure as well;
- the core (``db``, ``queue``, ``ingest``, ``storage``, ``accounts``, ``cleanup``,
  ``config``) never imports ``server``, ``worker``, ``cli``, ``demo`` or ``upload_client``;
- ``server`` and ``worker`` never import each other, and never ``db.models``: only the
  core touches ORM rows;
- the queue never imports storage: it reports the raw files a completion freed and
  the caller deletes them; ``retention``, which the queue uses, imports no storage either.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "crowdsky"
EDGES = (
    "crowdsky.server",
    "crowdsky.worker",
    "crowdsky.cli",
    "crowdsky.demo",
    "crowdsky.upload_client",
    "crowdsky.user_client",
)
CORE = (
    "crowdsky.db",
    "crowdsky.queue",
    "crowdsky.ingest",
    "crowdsky.storage",
    "crowdsky.accounts",
    "crowdsky.cleanup",
    "crowdsky.retention",
    "crowdsky.config",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "crowdsky" or name.startswith("crowdsky.")}


MODULES = {_module_name(p): _imports(p) for p in sorted(SRC.rglob("*.py"))}


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _violations(sources: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{module} imports {target}"
        for module, targets in MODULES.items()
        if _within(module, sources)
        for target in sorted(targets)
        if _within(target, forbidden) and not _within(target, (module,))
    ]


def test_modules_were_found() -> None:
    assert "crowdsky.queue.transitions" in MODULES
    assert "crowdsky.server.app" in MODULES


@pytest.mark.parametrize(
    "package",
    ["crowdsky.stacking", "crowdsky.simulate", "crowdsky.ingest.chunking", "crowdsky.healpix"],
)
def test_science_packages_import_only_themselves(package: str) -> None:
    allowed = (package, "crowdsky.healpix" if package == "crowdsky.ingest.chunking" else package)
    bad = [
        f"{module} imports {target}"
        for module, targets in MODULES.items()
        if _within(module, (package,))
        for target in sorted(targets)
        if target != "crowdsky"
        and target != "crowdsky.__version__"
        and not _within(target, allowed)
    ]
    assert bad == []


def test_core_never_imports_the_edges() -> None:
    assert _violations(CORE, EDGES) == []


def test_server_and_worker_do_not_import_each_other() -> None:
    assert _violations(("crowdsky.server",), ("crowdsky.worker",)) == []
    assert _violations(("crowdsky.worker",), ("crowdsky.server",)) == []


def test_edges_never_touch_orm_rows() -> None:
    assert (
        _violations(("crowdsky.server", "crowdsky.worker", "crowdsky.cli"), ("crowdsky.db.models",))
        == []
    )


def test_queue_and_retention_never_import_storage() -> None:
    assert "crowdsky.retention" in MODULES
    assert _violations(("crowdsky.queue", "crowdsky.retention"), ("crowdsky.storage",)) == []


def test_astrometry_imports_only_science_code() -> None:
    """The plate solver is core science code: itself and the pure HEALPix function."""
    allowed = ("crowdsky.astrometry", "crowdsky.healpix")
    bad = [
        f"{module} imports {target}"
        for module, targets in MODULES.items()
        if _within(module, ("crowdsky.astrometry",))
        for target in sorted(targets)
        if target != "crowdsky" and not _within(target, allowed)
    ]
    assert bad == []
    assert "crowdsky.astrometry.solver" in MODULES
