"""The upload client against a real server process: parallel, resumable, no duplicates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowdsky.upload_client import (
    LEGACY_STATE_FILE,
    UploadClient,
    UploadError,
    state_path,
    upload_folder,
)
from tests.ingest.fits_factory import write_frame, write_sequence
from tests.support.live_server import LiveServer, start_server_with_user

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PASSWORD = "client password"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    data_dir = tmp_path_factory.mktemp("upload-client") / "data"
    live, key = start_server_with_user(data_dir, username="carol", password=PASSWORD)
    try:
        yield live, key
    finally:
        live.stop()


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user cache folder (platformdirs reads XDG_CACHE_HOME), private to each test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_interrupted_upload_resumes_without_duplicates(
    server: tuple[LiveServer, str], tmp_path: Path
) -> None:
    live, _ = server
    folder = tmp_path / "night"
    frames = write_sequence(folder, 8)
    with UploadClient(live.url, username="carol", password=PASSWORD, parallel=3) as client:
        # "interrupted": only the first 5 files got through, no finalize
        first = upload_folder(client, folder, files=frames[:5], finalize=False)
        assert first.count("uploaded") == 5 and not first.resumed
        state = json.loads(state_path(folder).read_text())
        assert state["sessions"][live.url] == first.session_token
        assert state_path(folder).is_relative_to(tmp_path / "cache" / "crowdsky")
        assert not (folder / LEGACY_STATE_FILE).exists()
        second = upload_folder(client, folder)
        assert second.resumed and second.session_token == first.session_token
        assert second.count("already_on_server") == 5 and second.count("uploaded") == 3
        assert second.finalize["jobs"] == 1
        status = client.status(second.session_token)
        assert status["file_count"] == 8 and len(status["files"]) == 8
        # a third run changes nothing and reports the same job
        third = upload_folder(client, folder)
        assert third.count("already_on_server") == 8
        assert third.finalize["job_ids"] == second.finalize["job_ids"]


def test_rerun_after_finalize_sends_nothing_again_overwrite_sends_everything(
    server: tuple[LiveServer, str], tmp_path: Path
) -> None:
    """Skipped frames are deleted at finalize, yet a re-run knows the session has them."""
    live, key = server
    folder = tmp_path / "night"
    write_sequence(folder, 4, ra=50.0, dec=10.0, seed=21)
    write_sequence(folder, 2, ra=80.0, dec=10.0, seed=22, prefix="Other")  # too few: skipped
    with UploadClient(live.url, api_key=key) as client:
        first = upload_folder(client, folder)
        assert first.count("uploaded") == 6 and first.finalize["jobs"] == 1
        (skipped,) = first.finalize["skipped"]
        assert sorted(skipped["filenames"]) == ["Other_000.fit", "Other_001.fit"]
        again = upload_folder(client, folder)
        assert again.count("already_on_server") == 6
        assert again.session_token == first.session_token
        assert again.finalize["job_ids"] == first.finalize["job_ids"]
        assert again.finalize["skipped"] == first.finalize["skipped"]
        restack = upload_folder(client, folder, overwrite=True)
        assert restack.session_token != first.session_token
        assert restack.count("uploaded") == 6 and restack.finalize["jobs"] == 1


def test_a_session_left_in_the_folder_by_an_older_version_is_resumed_and_moved(
    server: tuple[LiveServer, str], tmp_path: Path
) -> None:
    live, key = server
    folder = tmp_path / "night"
    frames = write_sequence(folder, 4, ra=60.0, dec=5.0, seed=31)
    with UploadClient(live.url, api_key=key) as client:
        first = upload_folder(client, folder, files=frames[:2], finalize=False)
        state_path(folder).unlink()  # as an older client left it: in the folder only
        legacy = {"server": live.url, "session_token": first.session_token}
        (folder / LEGACY_STATE_FILE).write_text(json.dumps(legacy))
        second = upload_folder(client, folder)
    assert second.resumed and second.session_token == first.session_token
    assert second.count("already_on_server") == 2 and second.count("uploaded") == 2
    assert not (folder / LEGACY_STATE_FILE).exists()
    assert json.loads(state_path(folder).read_text())["sessions"][live.url] == first.session_token


def test_an_unreadable_state_file_starts_a_new_session(
    server: tuple[LiveServer, str], tmp_path: Path
) -> None:
    live, key = server
    folder = tmp_path / "night"
    write_sequence(folder, 3, ra=70.0, dec=5.0, seed=32)
    (folder / LEGACY_STATE_FILE).write_text("not json")  # not ours to judge: left alone
    state_path(folder).parent.mkdir(parents=True)
    state_path(folder).write_text("{broken")
    with UploadClient(live.url, api_key=key) as client:
        report = upload_folder(client, folder)
    assert not report.resumed and report.count("uploaded") == 3
    assert (folder / LEGACY_STATE_FILE).read_text() == "not json"


def test_refused_file_is_reported_and_others_go_through(
    server: tuple[LiveServer, str], tmp_path: Path
) -> None:
    live, key = server
    folder = tmp_path / "mixed"
    write_sequence(folder, 3, ra=10.0, dec=20.0, seed=3)
    write_frame(folder / "nodate.fit", date_obs=None, seed=77)
    with UploadClient(live.url, api_key=key) as client:
        report = upload_folder(client, folder)
    (failed,) = report.failed
    assert failed.error is not None and failed.error.startswith(
        "nodate.fit: header has no DATE-OBS"
    )
    assert report.count("uploaded") == 3 and report.finalize["jobs"] == 1


def test_wrong_credentials(server: tuple[LiveServer, str], tmp_path: Path) -> None:
    live, _ = server
    write_sequence(tmp_path, 1)
    with (
        UploadClient(live.url, username="carol", password="nope") as client,
        pytest.raises(UploadError) as info,
    ):
        upload_folder(client, tmp_path)
    assert info.value.status_code == 401


def test_cli_upload(server: tuple[LiveServer, str], tmp_path: Path) -> None:
    from crowdsky.cli import app

    live, key = server
    write_sequence(tmp_path, 4, ra=100.0, dec=-30.0, seed=11)
    result = CliRunner().invoke(
        app,
        ["upload", str(tmp_path), "--server", live.url, "--parallel", "2"],
        env={"CROWDSKY_API_KEY": key},
    )
    assert result.exit_code == 0, result.output
    assert "1 job(s) queued" in result.output
    assert "20250327.05_HP" in result.output  # the HEALPix chunk key (the default)
