"""WorkerSettings: the spec's variable names, defaults, and start-up errors naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from crowdsky.worker.config import load_worker_settings, token_in_share_url
from crowdsky.worker.errors import ConfigError

ORIGINAL_ENV = """\
# an existing worker .env, as in worker-reference.md
API_BASE_URL=https://crowdsky.example.org/api
WORKER_API_KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
UCLOUD_WEBDAV_URL=https://cloud.example.org/public.php/webdav
UCLOUD_SHARE_TOKEN=placeholderToken
UCLOUD_BASE_PATH=/crowdsky
WORKER_ID=worker-07
POLL_INTERVAL=15
WORK_DIR=./tmp
MAX_WORKERS=2
"""


def test_existing_original_env_file_works_unchanged(clean_env: Path) -> None:
    (clean_env / ".env").write_text(ORIGINAL_ENV)
    s = load_worker_settings()
    assert s.api_base_url == "https://crowdsky.example.org/api"
    assert s.worker_api_key.get_secret_value().startswith("0123")
    assert s.ucloud_webdav_url == "https://cloud.example.org/public.php/webdav"
    assert s.ucloud_share_token is not None
    assert s.worker_id == "worker-07"
    assert s.poll_interval == 15
    assert s.max_workers == 2
    assert s.work_dir == (clean_env / "tmp").resolve()
    assert s.work_dir.is_absolute()
    assert s.store_kind == "webdav"


def test_secrets_are_not_in_repr(clean_env: Path) -> None:
    (clean_env / ".env").write_text(ORIGINAL_ENV)
    text = repr(load_worker_settings())
    assert "0123456789abcdef" not in text
    assert "placeholderToken" not in text


def test_environment_beats_env_file_and_overrides_beat_both(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / ".env").write_text(ORIGINAL_ENV)
    monkeypatch.setenv("WORKER_ID", "from-env")
    assert load_worker_settings().worker_id == "from-env"
    assert load_worker_settings(worker_id="from-cli").worker_id == "from-cli"


def test_defaults_and_local_store(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_BASE_URL", "http://127.0.0.1:8000/api/")
    monkeypatch.setenv("WORKER_API_KEY", "k")
    s = load_worker_settings(None)
    assert s.api_base_url == "http://127.0.0.1:8000/api"
    assert s.ucloud_base_path == "/crowdsky"
    assert s.worker_id == "worker-01"
    assert s.poll_interval == 30
    assert s.max_workers == 4
    assert s.store_kind == "local"
    assert s.local_results_dir.is_absolute()


@pytest.mark.parametrize("missing", ["API_BASE_URL", "WORKER_API_KEY"])
def test_missing_required_variable_is_named(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    values = {"API_BASE_URL": "http://x/api", "WORKER_API_KEY": "k"}
    for name, value in values.items():
        if name != missing:
            monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f"{missing} is missing"):
        load_worker_settings(None)


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("API_BASE_URL", "ftp://x/api", "API_BASE_URL is invalid"),
        ("POLL_INTERVAL", "soon", "POLL_INTERVAL is invalid"),
        ("POLL_INTERVAL", "0", "POLL_INTERVAL is invalid"),
        ("MAX_WORKERS", "0", "MAX_WORKERS is invalid"),
        ("WORKER_ID", "two words", "WORKER_ID is invalid"),
        ("UCLOUD_BASE_PATH", "/a/../b", "UCLOUD_BASE_PATH is invalid"),
        ("RESULT_STORE", "s3", "RESULT_STORE is invalid"),
        ("WORKER_API_KEY", "  ", "WORKER_API_KEY is invalid"),
    ],
)
def test_invalid_variable_is_named(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv("API_BASE_URL", "http://x/api")
    monkeypatch.setenv("WORKER_API_KEY", "k")
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=fragment):
        load_worker_settings(None)


def test_webdav_store_needs_url_and_token(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_BASE_URL", "http://x/api")
    monkeypatch.setenv("WORKER_API_KEY", "k")
    monkeypatch.setenv("RESULT_STORE", "webdav")
    with pytest.raises(ConfigError, match="UCLOUD_WEBDAV_URL is missing"):
        load_worker_settings(None)
    monkeypatch.setenv("UCLOUD_WEBDAV_URL", "https://cloud.example.org/public.php/webdav")
    with pytest.raises(ConfigError, match="UCLOUD_SHARE_TOKEN is missing"):
        load_worker_settings(None)
    # the v2 endpoint carries the token in its path
    monkeypatch.setenv("UCLOUD_WEBDAV_URL", "https://cloud.example.org/public.php/dav/files/AbC")
    assert load_worker_settings(None).store_kind == "webdav"


def test_token_in_share_url() -> None:
    assert token_in_share_url("https://h/public.php/dav/files/AbC123/") == "AbC123"
    assert token_in_share_url("https://h/public.php/dav/files/") is None
    assert token_in_share_url("https://h/public.php/webdav") is None


def test_cli_exit_code_2_names_the_variable(clean_env: Path) -> None:
    from crowdsky.worker.main import main

    assert main(["--once", "--env-file", str(clean_env / "missing.env")]) == 2


def test_env_example_has_every_spec_variable_and_no_secrets() -> None:
    example = Path(__file__).resolve().parents[2] / ".env.example"
    text = example.read_text()
    for name in (
        "API_BASE_URL",
        "WORKER_API_KEY",
        "UCLOUD_WEBDAV_URL",
        "UCLOUD_SHARE_TOKEN",
        "UCLOUD_BASE_PATH",
        "WORKER_ID",
        "POLL_INTERVAL",
        "WORK_DIR",
        "MAX_WORKERS",
    ):
        assert f"{name}=" in text
    assert "change-me" in text or "<" in text


def test_describe_never_shows_secrets(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crowdsky.worker.config import describe

    monkeypatch.setenv("API_BASE_URL", "http://x/api")
    monkeypatch.setenv("WORKER_API_KEY", "key-placeholder-123")
    monkeypatch.setenv("UCLOUD_WEBDAV_URL", "https://h/public.php/dav/files/SecretTok")
    text = str(describe(load_worker_settings(None)))
    assert "SecretTok" not in text and "key-placeholder-123" not in text
    assert "<token>" in text
