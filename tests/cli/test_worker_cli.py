"""``crowdsky worker --once`` exit codes, run as processes against a real server.

0 a job was processed, 1 no job (the spec's meaning), 2 configuration (including an
``API_BASE_URL`` that is not the worker API, with the line to write), 3 server
unreachable, 4 key refused; ``--help`` lists them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from crowdsky.launch import free_port
from crowdsky.worker.main import EXIT_CODES
from tests.support.cli_process import cli_env, run_cli
from tests.support.live_server import LiveServer, start_live_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_live_server(tmp_path_factory.mktemp("worker-cli") / "data")
    try:
        yield live
    finally:
        live.stop()


def once(tmp_path: Path, api_base_url: str, key: str) -> tuple[int, str]:
    env = cli_env(
        tmp_path,
        {
            "API_BASE_URL": api_base_url,
            "WORKER_API_KEY": key,
            "WORK_DIR": str(tmp_path / "work"),
            "RESULT_STORE": "local",
            "LOCAL_RESULTS_DIR": str(tmp_path / "results"),
        },
    )
    done = run_cli("worker", "--once", "--console-logs", env=env, cwd=tmp_path)
    return done.code, done.output


def test_no_job_is_1(server: LiveServer, tmp_path: Path) -> None:
    code, output = once(tmp_path, server.api_url, server.worker_key)
    assert code == 1, output
    assert "no_job_available" in output


def test_a_refused_key_is_4(server: LiveServer, tmp_path: Path) -> None:
    code, output = once(tmp_path, server.api_url, "wrong-key")
    assert code == 4, output
    assert "crowdsky worker-token create" in output


def test_an_api_base_url_without_api_is_2_and_says_what_to_write(
    server: LiveServer, tmp_path: Path
) -> None:
    code, output = once(tmp_path, server.url, server.worker_key)
    assert code == 2, output
    assert f"API_BASE_URL must end in /api: set API_BASE_URL={server.url}/api" in output


def test_an_unreachable_server_is_3(tmp_path: Path) -> None:
    code, output = once(tmp_path, f"http://127.0.0.1:{free_port()}/api", "k")
    assert code == 3, output
    assert "is the server running" in output


def test_help_lists_every_exit_code(tmp_path: Path) -> None:
    done = run_cli("worker", "--help", env=cli_env(tmp_path), cwd=tmp_path)
    text = re.sub(r"\s+", " ", done.stdout)
    for code, meaning in EXIT_CODES.items():
        assert f"{code} {meaning}" in text, (code, meaning)
