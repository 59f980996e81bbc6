"""Worker modes: --once exit codes, a daemon that survives a dead server, graceful shutdown."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from crowdsky.storage.result_store import LocalResultStore
from crowdsky.worker.api_client import ApiClient
from crowdsky.worker.config import WorkerSettings, load_worker_settings
from crowdsky.worker.job_processor import JobProcessor
from crowdsky.worker.main import Worker
from tests.worker.fakes import (
    API,
    KEY,
    FakeStacker,
    FakeWorkerApi,
    fake_thumbnailer,
    no_wait_retry,
)


def settings(tmp_path: Path, **overrides: object) -> WorkerSettings:
    values: dict[str, object] = {
        "api_base_url": API,
        "worker_api_key": KEY,
        "work_dir": tmp_path / "work",
        "local_results_dir": tmp_path / "results",
        "poll_interval": 0.1,
        "max_workers": 2,
        "worker_id": "w-main",
    }
    values.update(overrides)
    return load_worker_settings(None, **values)


def make_worker(
    tmp_path: Path, fake: FakeWorkerApi, stacker: FakeStacker | None = None, **overrides: object
) -> Worker:
    s = settings(tmp_path, **overrides)
    api = ApiClient(API, KEY, s.worker_id, transport=fake.transport, retry=no_wait_retry(2))
    store = LocalResultStore(s.local_results_dir)
    proc = JobProcessor.from_settings(
        s, api, store, stacker=stacker or FakeStacker(), thumbnailer=fake_thumbnailer
    )
    return Worker(s, api=api, store=store, processor=proc, max_poll_backoff=0.2)


def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_once_exit_codes(tmp_path: Path, clean_env: Path) -> None:
    fake = FakeWorkerApi()
    worker = make_worker(tmp_path, fake)
    assert worker.run_once() == 1  # nothing queued
    fake.add_job(1)
    assert worker.run_once() == 0
    assert fake.jobs[1].status == "completed"
    fake.add_job(2)
    fake.jobs[2].files.clear()
    assert worker.run_once() == 0  # a job was found and processed (it failed)
    assert fake.jobs[2].status == "retry"
    fake.down = True
    assert worker.run_once() == 3  # server unreachable: a distinct code, not "no job"


def test_daemon_survives_a_dead_server_and_resumes(tmp_path: Path, clean_env: Path) -> None:
    fake = FakeWorkerApi()
    fake.down = True
    worker = make_worker(tmp_path, fake)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(worker.run_daemon()))
    thread.start()
    try:
        time.sleep(0.6)  # several failed polls
        assert thread.is_alive()
        for job_id in (1, 2, 3):
            fake.add_job(job_id)
        fake.down = False
        wait_for(lambda: all(j.status == "completed" for j in fake.jobs.values()))
    finally:
        worker.request_stop()
        thread.join(10)
    assert codes == [0]
    assert not list((tmp_path / "work").glob("job_*"))


def test_daemon_runs_jobs_in_parallel(tmp_path: Path, clean_env: Path) -> None:
    fake = FakeWorkerApi()
    for job_id in range(1, 5):
        fake.add_job(job_id)
    worker = make_worker(tmp_path, fake, FakeStacker(delay=0.5), max_workers=4)
    thread = threading.Thread(target=worker.run_daemon)
    started = time.monotonic()
    thread.start()
    try:
        wait_for(lambda: all(j.status == "completed" for j in fake.jobs.values()))
    finally:
        worker.request_stop()
        thread.join(10)
    assert time.monotonic() - started < 1.8  # 4 x 0.5 s run side by side


def test_shutdown_hands_back_jobs_after_the_bound_via_fail_job_on_an_old_server(
    tmp_path: Path, clean_env: Path
) -> None:
    fake = FakeWorkerApi()
    fake.add_job(1)
    worker = make_worker(tmp_path, fake, FakeStacker(delay=5.0), shutdown_timeout=0.3)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(worker.run_daemon()))
    thread.start()
    wait_for(lambda: fake.jobs[1].status == "processing")
    time.sleep(0.2)
    worker.request_stop()
    thread.join(15)
    assert codes == [0]
    assert fake.jobs[1].status == "retry"
    assert "shutting down" in fake.jobs[1].error_messages[0]
    assert fake.jobs[1].completed is None


def test_shutdown_lets_short_jobs_finish(tmp_path: Path, clean_env: Path) -> None:
    fake = FakeWorkerApi()
    fake.add_job(1)
    worker = make_worker(tmp_path, fake, FakeStacker(delay=0.5), shutdown_timeout=10)
    thread = threading.Thread(target=worker.run_daemon)
    thread.start()
    wait_for(lambda: fake.jobs[1].status == "processing")
    worker.request_stop()
    thread.join(15)
    assert fake.jobs[1].status == "completed"


def test_unwritable_work_dir_is_a_config_error(tmp_path: Path, clean_env: Path) -> None:
    from crowdsky.worker.errors import ConfigError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    worker = make_worker(tmp_path, FakeWorkerApi(), work_dir=blocker / "sub")
    with pytest.raises(ConfigError, match="WORK_DIR"):
        worker.run_once()


def test_the_engine_loads_at_start_only_for_a_daemon(
    tmp_path: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its loading thread is joined at exit: a --once run that finds no job must not
    start it (it would wait for numba), a daemon starts it before its first claim."""
    from crowdsky.worker import main, stacking_adapter

    calls: list[str] = []
    monkeypatch.setattr(stacking_adapter, "prepare_engine", lambda: calls.append("prepare"))
    monkeypatch.setattr(main, "run_once", lambda s: calls.append("once") or 1)
    monkeypatch.setattr(main, "run_daemon", lambda s: calls.append("daemon") or 0)
    options: dict[str, object] = {
        "api_base_url": API,
        "worker_api_key": KEY,
        "work_dir": tmp_path / "work",
        "local_results_dir": tmp_path / "results",
    }
    assert main.run(once=True, env_file=None, **options) == 1
    assert calls == ["once"]
    assert main.run(once=False, env_file=None, **options) == 0
    assert calls == ["once", "prepare", "daemon"]


def test_a_claimed_job_loads_the_real_engine(
    tmp_path: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crowdsky.worker import stacking_adapter

    calls: list[str] = []
    monkeypatch.setattr(stacking_adapter, "prepare_engine", lambda: calls.append("prepare"))
    fake = FakeWorkerApi()
    s = settings(tmp_path)
    api = ApiClient(API, KEY, s.worker_id, transport=fake.transport, retry=no_wait_retry(2))
    store = LocalResultStore(s.local_results_dir)
    for stacker, expected in ((FakeStacker(), []), (None, ["prepare"])):
        calls.clear()
        proc = JobProcessor.from_settings(s, api, store, stacker=stacker)
        fake.add_job(len(fake.jobs) + 1)
        job = api.get_next_job()
        assert job is not None
        fake.jobs[int(job["job_id"])].files.clear()  # fails at once, before any stacking
        proc.process_job(job)
        assert calls == expected
