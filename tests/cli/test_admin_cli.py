"""Administration commands: db upgrade, worker tokens, cleanup (typer's CliRunner)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from crowdsky.cli import app
from crowdsky.db import create_db_engine
from crowdsky.db.models import WorkerToken
from tests.db_backends import TestDatabase

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    monkeypatch.setenv("CROWDSKY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CROWDSKY_DATABASE_URL", raising=False)
    created = runner.invoke(app, ["db", "upgrade"])  # admin commands never create it
    assert created.exit_code == 0, created.output
    return tmp_path


def test_db_upgrade_on_each_backend(
    test_db: TestDatabase, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROWDSKY_DATABASE_URL", test_db.url)
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "is at revision head" in result.output


def test_db_upgrade_reports_an_unreachable_database(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROWDSKY_DATABASE_URL", "postgresql://u:secret@127.0.0.1:1/x")
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 2
    assert "could not migrate" in result.output and "secret" not in result.output


def test_worker_token_is_shown_once_and_stored_hashed(env: Path) -> None:
    created = runner.invoke(app, ["worker-token", "create", "zeus-01"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[0]
    assert token.startswith("csw_") and len(token) > 40
    engine = create_db_engine(f"sqlite:///{env / 'data' / 'crowdsky.sqlite3'}")
    with engine.connect() as connection:
        stored = connection.execute(select(WorkerToken.token_hash, WorkerToken.name)).one()
    engine.dispose()
    assert stored.name == "zeus-01" and token not in stored.token_hash
    again = runner.invoke(app, ["worker-token", "create", "zeus-01"])
    assert again.exit_code == 2 and "already has a token" in again.output
    listed = runner.invoke(app, ["worker-token", "list"])
    assert "zeus-01" in listed.output and token not in listed.output
    assert runner.invoke(app, ["worker-token", "revoke", "zeus-01"]).exit_code == 0
    missing = runner.invoke(app, ["worker-token", "revoke", "zeus-01"])
    assert missing.exit_code == 2 and "no active token" in missing.output
    # after revocation a new token may be issued
    assert runner.invoke(app, ["worker-token", "create", "zeus-01"]).exit_code == 0


def test_worker_token_names_are_validated(env: Path) -> None:
    result = runner.invoke(app, ["worker-token", "create", "bad name/.."])
    assert result.exit_code == 2 and "invalid worker name" in result.output


def test_cleanup_command_prints_the_summary(env: Path) -> None:
    result = runner.invoke(app, ["cleanup"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Cleanup done: 0 expired sessions, 0 files deleted")


def test_invalid_setting_names_the_variable(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPLOAD_EXPIRY_HOURS", "soon")
    result = runner.invoke(app, ["cleanup"])
    assert result.exit_code == 2
    assert "UPLOAD_EXPIRY_HOURS" in result.output
