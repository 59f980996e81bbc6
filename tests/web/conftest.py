"""Browser fixtures for the web app: a real server and worker, Debian's Chromium via Playwright.

The server runs as ``crowdsky server`` with a local result store that the worker
(``python -m crowdsky.worker``, ``RESULT_STORE=local``) publishes into, so the pages can
show thumbnails and serve downloads. Chromium is found on the PATH; without it the tests
skip with a message, and fail when ``CROWDSKY_REQUIRE_ALL_BACKENDS=1`` (CI).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.db_backends import require_all_backends
from tests.support.live_server import LiveServer, start_live_server

ADMIN = "web-admin"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def chromium_path() -> str:
    """Debian's Chromium, or skip (fail in CI)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = (
            "chromium not found on PATH: install it (apt-get install chromium) to run web tests"
        )
        if require_all_backends():
            pytest.fail(message)
        pytest.skip(message)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        message = "playwright is not installed (pip install -e '.[test]')"
        if require_all_backends():
            pytest.fail(message)
        pytest.skip(message)
    return found


@dataclass
class WebDeployment:
    """A server with a local result store and a worker process publishing into it."""

    server: LiveServer
    results_dir: Path
    worker: subprocess.Popen[bytes] | None
    worker_log: Path

    @property
    def url(self) -> str:
        return self.server.url

    def worker_output(self) -> str:
        return self.worker_log.read_text(errors="replace") if self.worker_log.exists() else ""


def start_web_deployment(root: Path, *, worker: bool = True) -> WebDeployment:
    """Start the server (and a worker) for browser tests."""
    results = root / "results"
    results.mkdir(parents=True, exist_ok=True)
    server = start_live_server(
        root / "server-data",
        extra_env={
            "CROWDSKY_RESULTS_DIR": str(results),
            "CROWDSKY_ADMIN_USERS": ADMIN,
            "CROWDSKY_RETRY_BACKOFF_SECONDS": "0",
        },
    )
    log_path = root / "worker.log"
    process = None
    if worker:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "UCLOUD_"))}
        env.update(
            {
                "API_BASE_URL": server.api_url,
                "WORKER_API_KEY": server.worker_key,
                "WORKER_ID": "web-test-worker",
                "POLL_INTERVAL": "0.5",
                "WORK_DIR": str(root / "work"),
                "RESULT_STORE": "local",
                "LOCAL_RESULTS_DIR": str(results),
                "MAX_WORKERS": "1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "crowdsky.worker", "--json-logs"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=root,
            )
    return WebDeployment(server, results, process, log_path)


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDeployment]:
    """One server and worker for a test module."""
    deployment = start_web_deployment(tmp_path_factory.mktemp("web"))
    yield deployment
    if deployment.worker is not None:
        deployment.worker.terminate()
        try:
            deployment.worker.wait(30)
        except subprocess.TimeoutExpired:
            deployment.worker.kill()
    deployment.server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium (Debian's) driven by Playwright."""
    path = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=path, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield instance
        instance.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests put their screenshots (``CROWDSKY_SCREENSHOT_DIR`` to keep them)."""
    chosen = os.environ.get("CROWDSKY_SCREENSHOT_DIR")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def csrf(page: Any) -> str:
    """The page's CSRF token."""
    return str(page.get_attribute('meta[name="csrf-token"]', "content"))


def register(page: Any, base: str, username: str, password: str = "Orion-Nebula-42") -> None:
    """Register through the form (ends logged in, on the upload page)."""
    page.goto(f"{base}/register")
    page.fill("#username", username)
    page.fill("#email", f"{username}@example.org")
    page.fill("#password", password)
    page.fill("#password2", password)
    page.click("button[type=submit]:has-text('Create account')")
    page.wait_for_url(re.compile(r".*/upload$"))


def check_accessibility(page: Any) -> list[dict[str, Any]]:
    """axe-core's WCAG 2 A/AA violations on the current page."""
    # served from the app's own vendored copy: an inline script would (rightly) hit the CSP
    page.add_script_tag(url="/static/vendor/axe.min.js")
    result: dict[str, Any] = page.evaluate(
        """async () => await axe.run(document, {runOnly: {type: 'tag',
            values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"""
    )
    return [
        {"id": v["id"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
    ]
