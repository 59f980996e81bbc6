"""``crowdsky doctor`` run as a process: each problem reported with its fix, exit 1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crowdsky.launch import free_port
from tests.support.cli_process import cli_env, run_cli
from tests.support.live_server import LiveServer, start_live_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_live_server(tmp_path_factory.mktemp("doctor") / "data")
    try:
        yield live
    finally:
        live.stop()


def worker_env(tmp_path: Path, api: str, key: str) -> dict[str, str]:
    return cli_env(
        tmp_path,
        {
            "API_BASE_URL": api,
            "WORKER_API_KEY": key,
            "WORK_DIR": str(tmp_path / "work"),
            "RESULT_STORE": "local",
            "LOCAL_RESULTS_DIR": str(tmp_path / "results"),
        },
    )


def test_a_healthy_worker(server: LiveServer, tmp_path: Path) -> None:
    env = worker_env(tmp_path, server.api_url, server.worker_key)
    done = run_cli("doctor", "--server", server.url, env=env, cwd=tmp_path)
    assert done.code == 0, done.output
    for line in ("ok      server:", "ok      worker key: accepted", "ok      result store:"):
        assert line in done.stdout, done.stdout
    assert "plate solver" in done.stdout and "siril" in done.stdout
    assert "no problem found" in done.stdout
    assert not list((tmp_path / "results").rglob("*doctor*")), "the probe file was removed"


def test_a_worker_with_a_wrong_key_and_url(server: LiveServer, tmp_path: Path) -> None:
    wrong_key = run_cli("doctor", env=worker_env(tmp_path, server.api_url, "nope"), cwd=tmp_path)
    assert wrong_key.code == 1
    assert "PROBLEM worker key: the server refused WORKER_API_KEY" in wrong_key.stdout
    no_api = run_cli(
        "doctor", env=worker_env(tmp_path, server.url, server.worker_key), cwd=tmp_path
    )
    assert no_api.code == 1
    assert f"fix: API_BASE_URL must end in /api: set API_BASE_URL={server.url}/api" in (
        no_api.stdout
    )
    down = f"http://127.0.0.1:{free_port()}"
    gone = run_cli(
        "doctor", "--server", down, env=worker_env(tmp_path, f"{down}/api", "k"), cwd=tmp_path
    )
    assert gone.code == 1 and f"cannot reach {down}/api" in gone.stdout
    assert f"PROBLEM server URL: cannot reach {down}" in gone.stdout


def test_a_server_without_its_database(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    missing = run_cli("doctor", "--data-dir", str(tmp_path / "srv"), env=env, cwd=tmp_path)
    assert missing.code == 1, missing.output
    assert "PROBLEM database: no database at" in missing.stdout
    assert "fix: run `crowdsky db upgrade`" in missing.stdout
    assert run_cli("db", "upgrade", "--data-dir", "srv", env=env, cwd=tmp_path).code == 0
    ready = run_cli("doctor", "--data-dir", "srv", env=env, cwd=tmp_path)
    assert ready.code == 0, ready.output
    assert "ok      database:" in ready.stdout and "ok      raw-upload folder" in ready.stdout
    nothing = run_cli("doctor", env=env, cwd=tmp_path)
    assert nothing.code == 2 and "nothing to check here" in nothing.stderr
