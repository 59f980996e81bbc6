"""scripts/bootstrap explains a Python that cannot make a virtual environment with pip."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def debian_like_python(tmp_path: Path) -> Path:
    """A python3 whose ensurepip and pip cannot be imported (Debian without python3-venv)."""
    shadow = tmp_path / "shadow"
    for module in ("ensurepip", "pip"):
        (shadow / module).mkdir(parents=True)
        (shadow / module / "__init__.py").write_text("raise ImportError('not installed')\n")
    python = tmp_path / "python3"
    python.write_text(f'#!/bin/sh\nPYTHONPATH={shadow} exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    return python


def run_bootstrap(project: Path, python: Path) -> subprocess.CompletedProcess[str]:
    (project / "scripts").mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "scripts" / "bootstrap", project / "scripts" / "bootstrap")
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    return subprocess.run(
        [str(project / "scripts" / "bootstrap")],
        env={**os.environ, "PYTHON": str(python)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_missing_venv_support_is_explained_before_anything_is_made(tmp_path: Path) -> None:
    project = tmp_path / "project"
    result = run_bootstrap(project, debian_like_python(tmp_path))
    assert result.returncode == 1
    assert "install python3-venv" in result.stderr
    assert "PYTHON=" in result.stderr  # or use another Python
    assert not (project / ".venv").exists()


def test_a_venv_without_pip_is_explained(tmp_path: Path) -> None:
    project = tmp_path / "project"
    python = debian_like_python(tmp_path)
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / ".venv" / "bin" / "python").symlink_to(python)
    result = run_bootstrap(project, python)
    assert result.returncode == 1
    assert ".venv has no pip" in result.stderr and "rm -rf .venv" in result.stderr
