"""``/docs`` works with no network: Swagger UI's assets come from the package.

A real server process, and a real headless Chromium that may resolve no host but
127.0.0.1, so any request to a CDN would fail; the page still renders every endpoint.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.db_backends import require_all_backends
from tests.support.live_server import LiveServer, start_live_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_live_server(tmp_path_factory.mktemp("docs-page") / "data")
    try:
        yield live
    finally:
        live.stop()


def test_docs_page_and_its_assets_are_served_locally(server: LiveServer) -> None:
    page = httpx.get(f"{server.url}/docs", timeout=30)
    assert page.status_code == 200
    assert "/docs-assets/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    bundle = httpx.get(f"{server.url}/docs-assets/swagger-ui-bundle.js", timeout=30)
    assert bundle.status_code == 200 and len(bundle.content) > 500_000
    css = httpx.get(f"{server.url}/docs-assets/swagger-ui.css", timeout=30)
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]


def test_docs_page_renders_in_a_browser_without_network(server: LiveServer, tmp_path: Path) -> None:
    if CHROMIUM is None:
        message = "chromium not found: cannot render /docs in a real browser"
        if require_all_backends():
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=10000",
            "--dump-dom",
            f"{server.url}/docs",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "HOME": str(tmp_path)},
        check=False,
    )
    dom = done.stdout
    assert 'class="swagger-ui' in dom, done.stderr[-2000:]
    for endpoint in ("next_job", "raw_upload", "my_jobs"):
        assert endpoint in dom, endpoint
