"""``crowdsky demo --serve`` logs the demo user in to the web app through its login form."""

from __future__ import annotations

from pathlib import Path

import pytest

from crowdsky.demo import DemoError, DemoRun, create_demo_user, web_login
from tests.support.live_server import start_live_server

pytestmark = [pytest.mark.e2e]


def test_demo_user_logs_in_to_the_web_app(tmp_path: Path) -> None:
    run = DemoRun(run_dir=tmp_path)
    server = start_live_server(run.server_dir)
    run.server_url = server.url
    try:
        create_demo_user(run)
        assert web_login(run) == f"{server.url}/stacks"
        run.password = "not-the-password"
        with pytest.raises(DemoError, match="logging in"):
            web_login(run)
    finally:
        server.stop()
