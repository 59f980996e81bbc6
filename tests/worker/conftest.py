"""Fixtures of the worker tests: a clean worker environment and a real WebDAV share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.webdav_server import WebDavServer

WORKER_VARIABLES = (
    "API_BASE_URL",
    "WORKER_API_KEY",
    "UCLOUD_WEBDAV_URL",
    "UCLOUD_SHARE_TOKEN",
    "UCLOUD_SHARE_PASSWORD",
    "UCLOUD_BASE_PATH",
    "WORKER_ID",
    "POLL_INTERVAL",
    "WORK_DIR",
    "MAX_WORKERS",
    "RESULT_STORE",
    "LOCAL_RESULTS_DIR",
    "SHUTDOWN_TIMEOUT",
    "DOWNLOAD_CONCURRENCY",
    "HEARTBEAT_INTERVAL",
    "LOG_LEVEL",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No worker variables in the environment and an empty current folder (no .env)."""
    for name in WORKER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def webdav_share(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDavServer]:
    """A real wsgidav process emulating a Nextcloud public share (both endpoints)."""
    server = WebDavServer(tmp_path_factory.mktemp("webdav"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def share(webdav_share: WebDavServer) -> Iterator[WebDavServer]:
    """The module's share, reset to normal service and a fresh request log."""
    webdav_share.set_mode("ok")
    if not webdav_share.running:
        webdav_share.start()
    webdav_share.clear_requests()
    yield webdav_share
    webdav_share.set_mode("ok")
    if not webdav_share.running:
        webdav_share.start()
