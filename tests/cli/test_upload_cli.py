"""``crowdsky upload`` run as a user runs it: a child process against a real server.

Each test is one message from issue 19: what the command prints for a mistake, and
that it prints the fix. Prompts and progress bars are checked on a real
pseudo-terminal (:class:`tests.support.cli_process.Terminal`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from crowdsky.launch import free_port
from tests.ingest.fits_factory import write_sequence
from tests.support.cli_process import Terminal, cli_env, run_cli
from tests.support.live_server import LiveServer, start_server_with_user

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PASSWORD = "terminal password"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    data_dir = tmp_path_factory.mktemp("upload-cli") / "data"
    live, key = start_server_with_user(data_dir, username="dave", password=PASSWORD)
    try:
        yield live, key
    finally:
        live.stop()


def test_a_server_url_ending_in_api_is_answered_with_the_base_url(tmp_path: Path) -> None:
    write_sequence(tmp_path / "night", 1)
    port = free_port()
    done = run_cli(
        "upload", str(tmp_path / "night"), "--server", f"http://127.0.0.1:{port}/api",
        env=cli_env(tmp_path, {"CROWDSKY_API_KEY": "csk_x"}), cwd=tmp_path,
    )  # fmt: skip
    assert done.code == 2, done.output
    assert f"--server http://127.0.0.1:{port} " in done.output
    assert "Traceback" not in done.output


def test_password_is_asked_on_a_terminal_and_progress_is_drawn(
    server: tuple[LiveServer, str], tmp_path: Path
) -> None:
    live, _ = server
    folder = tmp_path / "night"
    write_sequence(folder, 4, ra=120.0, dec=10.0, seed=41)
    term = Terminal(
        "upload", str(folder), "--server", live.url, "--user", "dave",
        env=cli_env(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    term.expect("Password for dave: ")
    term.type(PASSWORD)
    assert term.wait() == 0, term.text
    assert PASSWORD not in term.text, "the password is not echoed"
    assert "4 files" in term.text and "━" in term.text, "a progress bar was drawn"
    assert "1 job(s) queued" in term.text


def test_without_a_terminal_a_missing_password_names_the_option(
    server: tuple[LiveServer, str], tmp_path: Path
) -> None:
    live, _ = server
    write_sequence(tmp_path / "night", 1)
    done = run_cli(
        "upload", str(tmp_path / "night"), "--server", live.url, "--user", "dave",
        env=cli_env(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert done.code == 2
    assert "give --password or set CROWDSKY_PASSWORD" in done.output


def test_a_folder_of_refused_files_shows_why(
    server: tuple[LiveServer, str], tmp_path: Path
) -> None:
    live, key = server
    folder = tmp_path / "card"
    folder.mkdir()
    (folder / "Light_001.fit").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(4000))
    done = run_cli(
        "upload", str(folder), "--server", live.url,
        env=cli_env(tmp_path, {"CROWDSKY_API_KEY": key}), cwd=tmp_path,
    )  # fmt: skip
    assert done.code == 1, done.output
    assert "refused Light_001.fit: " in done.output
    assert "the server refused every file" in done.output
    assert "no files; upload at least one file before finalize" not in done.output


def test_rerunning_a_finished_folder_says_nothing_was_queued(
    server: tuple[LiveServer, str], tmp_path: Path
) -> None:
    live, key = server
    folder = tmp_path / "night"
    write_sequence(folder, 4, ra=130.0, dec=10.0, seed=42)
    env = cli_env(tmp_path, {"CROWDSKY_API_KEY": key})
    first = run_cli("upload", str(folder), "--server", live.url, env=env, cwd=tmp_path)
    assert first.code == 0 and "1 job(s) queued" in first.output, first.output
    term = Terminal("upload", str(folder), "--server", live.url, env=env, cwd=tmp_path)
    assert term.wait() == 0, term.text
    assert "job(s) queued" not in term.text
    assert "4 already on the server" in term.text
    assert "finalized before: nothing new was sent and no job was queued now" in term.text
    assert "GB/s" not in term.text and "TB/s" not in term.text, term.text


def test_a_chunk_skipped_as_already_queued_names_overwrite(
    server: tuple[LiveServer, str], tmp_path: Path
) -> None:
    live, key = server
    write_sequence(tmp_path / "night", 4, ra=140.0, dec=10.0, seed=43)
    shutil.copytree(tmp_path / "night", tmp_path / "copy")  # same frames, new folder: new session
    env = cli_env(tmp_path, {"CROWDSKY_API_KEY": key})
    assert run_cli("upload", "night", "--server", live.url, env=env, cwd=tmp_path).code == 0
    again = run_cli("upload", "copy", "--server", live.url, env=env, cwd=tmp_path)
    assert again.code == 0, again.output
    assert "skipped" in again.output and "run this upload again with --overwrite" in again.output
    assert "overwrite=1" not in again.output
    restack = run_cli("upload", "copy", "--server", live.url, "--overwrite", env=env, cwd=tmp_path)
    assert "1 job(s) queued" in restack.output, restack.output


def test_an_unreachable_server_shows_no_progress_bar(tmp_path: Path) -> None:
    write_sequence(tmp_path / "night", 2)
    url = f"http://127.0.0.1:{free_port()}"
    term = Terminal(
        "upload", str(tmp_path / "night"), "--server", url,
        env=cli_env(tmp_path, {"CROWDSKY_API_KEY": "csk_nothing"}), cwd=tmp_path,
    )  # fmt: skip
    assert term.wait() == 3, term.text
    assert f"cannot reach {url}" in term.text
    assert "2 files" not in term.text and "━" not in term.text, term.text


def test_upload_state_lives_in_the_cache_not_in_the_frame_folder(
    server: tuple[LiveServer, str], tmp_path: Path
) -> None:
    live, key = server
    folder = tmp_path / "card"
    write_sequence(folder, 3, ra=150.0, dec=10.0, seed=44)
    before = sorted(p.name for p in folder.iterdir())
    env = cli_env(tmp_path, {"CROWDSKY_API_KEY": key})
    assert run_cli("upload", str(folder), "--server", live.url, env=env, cwd=tmp_path).code == 0
    assert sorted(p.name for p in folder.iterdir()) == before, "nothing written into the folder"
    (state_file,) = (tmp_path / "cache" / "crowdsky" / "uploads").glob("*.json")
    state = json.loads(state_file.read_text())
    assert state["folder"] == str(folder.resolve()) and live.url in state["sessions"]
