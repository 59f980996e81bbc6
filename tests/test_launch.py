"""Child process handling of ``crowdsky.launch`` (used by the demo and the e2e tests)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import pytest

from crowdsky import launch

#: A "server" that never answers /healthz; with ``ignore_term`` it also ignores SIGTERM.
SLEEPER = "import signal, time\n{ignore}print('ready', flush=True)\ntime.sleep(120)\n"


@contextmanager
def interrupt_after(seconds: float) -> Iterator[None]:
    """Raise KeyboardInterrupt in the main thread after ``seconds``, as the demo's
    SIGTERM handler does."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[launch.ManagedProcess]:
    """Make start_server start a sleeper instead of the real server; returns what it started."""
    processes: list[launch.ManagedProcess] = []

    def fake_start_process(
        name: str, arguments: Sequence[str], *, env: object, log_path: Path, cwd: Path
    ) -> launch.ManagedProcess:
        ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if "ignore" in name else ""
        process = subprocess.Popen(
            [sys.executable, "-c", SLEEPER.format(ignore=ignore)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
        )
        assert process.stdout is not None
        assert process.stdout.readline() == b"ready\n"  # its SIGTERM handling is in place
        process.stdout.close()
        processes.append(launch.ManagedProcess(name, process, log_path))
        return processes[-1]

    monkeypatch.setattr(launch, "start_process", fake_start_process)
    return processes


@pytest.mark.parametrize("ignores_sigterm", [False, True])
def test_server_interrupted_while_waiting_for_health_is_stopped(
    started: list[launch.ManagedProcess],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    ignores_sigterm: bool,
) -> None:
    monkeypatch.setattr(launch, "ABORT_STOP_TIMEOUT_S", 1.0)
    if ignores_sigterm:
        original = launch.start_process
        monkeypatch.setattr(
            launch,
            "start_process",
            lambda name, *a, **kw: original(f"{name}-ignore", *a, **kw),
        )
    try:
        with pytest.raises(KeyboardInterrupt), interrupt_after(0.5):
            launch.start_server(tmp_path, env={}, port=launch.free_port(), ready_timeout_s=30)
        (server,) = started
        assert not server.alive
        expected = -signal.SIGKILL if ignores_sigterm else -signal.SIGTERM
        assert server.process.returncode == expected
    finally:
        for process in started:
            process.kill()


def test_server_that_never_becomes_ready_is_killed(
    started: list[launch.ManagedProcess], tmp_path: Path
) -> None:
    with pytest.raises(launch.LaunchError, match="did not become ready"):
        launch.start_server(tmp_path, env={}, port=launch.free_port(), ready_timeout_s=0.5)
    (server,) = started
    assert not server.alive
