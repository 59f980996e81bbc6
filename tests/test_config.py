"""``config.ServerSettings``: read once from the environment and ``.env``, checked, frozen."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from crowdsky.config import ServerSettings, SettingsError, load_server_settings

VARIABLES = (
    "CROWDSKY_DATA_DIR",
    "CROWDSKY_DATABASE_URL",
    "WORKER_API_KEY",
    "UPLOAD_EXPIRY_HOURS",
    "CROWDSKY_JOB_LEASE_SECONDS",
    "CROWDSKY_RAW_STORE",
    "CHUNK_KEY_FORMAT",
    "CROWDSKY_RESULTS_DIR",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No inherited variables and no ``.env`` but the test's own."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_the_database_and_folders_default_to_the_data_dir(tmp_path: Path) -> None:
    settings = load_server_settings(data_dir=tmp_path / "data")
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'data' / 'crowdsky.sqlite3'}"
    assert settings.resolved_results_dir == tmp_path / "data" / "results"
    assert settings.uploads_dir == tmp_path / "data" / "uploads"


def test_variables_are_read_by_their_spec_names_and_overrides_win(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CROWDSKY_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("WORKER_API_KEY", "secret-key")
    monkeypatch.setenv("CROWDSKY_JOB_LEASE_SECONDS", "90")
    settings = load_server_settings()
    assert settings.data_dir == tmp_path / "env"
    assert settings.job_lease_seconds == 90
    assert settings.worker_api_key is not None
    assert settings.worker_api_key.get_secret_value() == "secret-key"
    assert "secret-key" not in repr(settings)
    assert load_server_settings(job_lease_seconds=30).job_lease_seconds == 30


def test_a_dotenv_file_in_the_working_folder_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CROWDSKY_DATABASE_URL=postgresql://db.example/crowdsky\n")
    assert load_server_settings().resolved_database_url == "postgresql://db.example/crowdsky"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("UPLOAD_EXPIRY_HOURS", "0"),
        ("CROWDSKY_JOB_LEASE_SECONDS", "soon"),
        ("CROWDSKY_RAW_STORE", "s3://"),
        ("CROWDSKY_RAW_STORE", "/var/raw"),
        ("CHUNK_KEY_FORMAT", "weekly"),
    ],
)
def test_an_invalid_value_stops_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_server_settings()


def test_raw_store_and_chunk_key_format_are_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROWDSKY_RAW_STORE", "")
    monkeypatch.setenv("CHUNK_KEY_FORMAT", "HEALPix")
    settings = load_server_settings()
    assert settings.raw_store is None and settings.chunk_key_format == "healpix"
    assert load_server_settings(raw_store="s3://bucket/raw").raw_store == "s3://bucket/raw"


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = ServerSettings(data_dir=tmp_path)
    with pytest.raises(ValidationError):
        settings.data_dir = tmp_path / "other"  # type: ignore[misc]
