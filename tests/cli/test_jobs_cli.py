"""``crowdsky jobs list|show`` and ``crowdsky stacks list|show|download`` as processes
against a real server.

Jobs are created with ``crowdsky upload``; one is claimed and completed over the
worker API with frames left out, as a worker reports them, so the listing shows
the reasons.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ingest.fits_factory import write_sequence
from tests.support.cli_process import Terminal, cli_env, run_cli
from tests.support.live_server import LiveServer, start_server_with_user

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PASSWORD = "jobs password"
STACK_BYTES = b"SIMPLE  =                    T" + bytes(2880 * 200 - 30)
REJECTED = [{"filename": "Light_001.fit", "reason": "trailed: elongation 3.2 (limit 1.8)"}]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LiveServer, str, int, str]]:
    home = tmp_path_factory.mktemp("jobs-cli")
    live, key = start_server_with_user(home / "data", username="fay", password=PASSWORD)
    try:
        write_sequence(home / "night", 4, ra=160.0, dec=10.0, seed=51)
        env = cli_env(home, {"CROWDSKY_API_KEY": key})
        assert run_cli("upload", "night", "--server", live.url, env=env, cwd=home).code == 0
        with live.client() as worker:
            job = worker.get("/api/next_job.php", params={"worker_id": "w1"}).json()
            published = home / "data" / "results" / "crowdsky" / "stacks" / "s.fits"
            published.parent.mkdir(parents=True)
            published.write_bytes(STACK_BYTES)  # as a local result store holds it
            done = worker.post(
                "/api/complete_job.php",
                json={
                    "job_id": job["job_id"],
                    "worker_id": "w1",
                    "lease_token": job["lease_token"],
                    "ucloud_path": "/crowdsky/stacks/s.fits",
                    "n_frames_input": 4,
                    "n_frames_aligned": 3,
                    "total_exptime": 30.0,
                    "rejected_frames": REJECTED,
                },
            )
            assert done.status_code == 200, done.text
        yield live, key, int(job["job_id"]), str(job["chunk_key"])
    finally:
        live.stop()


def test_jobs_list_json_and_table(server: tuple[LiveServer, str, int, str], tmp_path: Path) -> None:
    live, key, job_id, _ = server
    env = cli_env(tmp_path, {"CROWDSKY_API_KEY": key})
    as_json = run_cli("jobs", "list", "--server", live.url, "--json", env=env, cwd=tmp_path)
    assert as_json.code == 0, as_json.output
    (job,) = json.loads(as_json.stdout)
    assert job["job_id"] == job_id and job["stack"]["rejected_frames"] == REJECTED
    table = run_cli("jobs", "list", "--server", live.url, env=env, cwd=tmp_path)
    assert "completed" in table.stdout and "3/4" in table.stdout
    assert "Light_001.fit: trailed" in table.stdout


def test_jobs_show_on_a_terminal_with_a_password(
    server: tuple[LiveServer, str, int, str], tmp_path: Path
) -> None:
    live, _, job_id, _ = server
    term = Terminal(
        "jobs", "show", str(job_id), "--server", live.url, "--user", "fay",
        env=cli_env(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    term.expect("Password for fay: ")
    term.type(PASSWORD)
    assert term.wait() == 0, term.text
    assert "status:   completed" in term.text and "left out: 1" in term.text
    assert "Light_001.fit: trailed: elongation 3.2 (limit 1.8)" in term.text


def test_jobs_refusals(server: tuple[LiveServer, str, int, str], tmp_path: Path) -> None:
    live, key, _, _ = server
    env = cli_env(tmp_path, {"CROWDSKY_API_KEY": key})
    missing = run_cli("jobs", "show", "999999", "--server", live.url, env=env, cwd=tmp_path)
    assert missing.code == 1 and "no job 999999 among your jobs" in missing.stderr
    wrong = run_cli(
        "jobs", "list", "--server", live.url, env=cli_env(tmp_path, {"CROWDSKY_API_KEY": "csk_x"}),
        cwd=tmp_path,
    )  # fmt: skip
    assert wrong.code == 3 and "check --user/--password or --api-key" in wrong.stderr
    api = run_cli("jobs", "list", "--server", f"{live.url}/api", env=env, cwd=tmp_path)
    assert api.code == 2 and f"--server {live.url} " in api.stderr


def test_stacks_list_show_and_download(
    server: tuple[LiveServer, str, int, str], tmp_path: Path
) -> None:
    live, key, job_id, chunk_key = server
    env = cli_env(tmp_path, {"CROWDSKY_API_KEY": key})
    listed = run_cli("stacks", "list", "--server", live.url, "--json", env=env, cwd=tmp_path)
    assert listed.code == 0, listed.output
    (stack,) = json.loads(listed.stdout)
    assert stack["chunk_key"] == chunk_key and stack["job_id"] == job_id
    table = run_cli("stacks", "list", "--server", live.url, env=env, cwd=tmp_path)
    assert chunk_key in table.stdout and "3/4" in table.stdout
    shown = run_cli("stacks", "show", chunk_key, "--server", live.url, env=env, cwd=tmp_path)
    assert shown.code == 0 and "ucloud_path:" in shown.stdout
    term = Terminal(
        "stacks", "download", chunk_key, "--server", live.url, "-o", str(tmp_path),
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert term.wait() == 0, term.text
    assert "━" in term.text and "s.fits" in term.text, "a progress bar was drawn"
    assert (tmp_path / "s.fits").read_bytes() == STACK_BYTES
    assert not list(tmp_path.glob("*.part"))
    missing = run_cli(
        "stacks", "download", "20990101.00_HP000001", "--server", live.url, env=env, cwd=tmp_path
    )
    assert missing.code == 1 and "crowdsky stacks list" in missing.stderr
