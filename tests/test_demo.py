"""`crowdsky demo` end to end: real server and worker processes, the upload API, stacks."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from astropy.io import fits
from PIL import Image

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: Half-size S50 frames keep the --frames run fast (as in tests/e2e).
FRAME_SHAPE = (540, 960)


def demo_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("CROWDSKY_", "WORKER_"))}


def start_demo(
    cwd: Path, *args: str, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``crowdsky demo ARGS`` with its output (stdout and stderr) in a file."""
    output = cwd / "demo-output.txt"
    with output.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "crowdsky", "demo", *args],
            cwd=cwd,
            env={**demo_env(), **(extra_env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return process, output


def watch_children(
    process: subprocess.Popen[bytes], timeout_s: float, *, until_count: int | None = None
) -> dict[psutil.Process, str]:
    """Every child process (and its command) seen until ``process`` exits or ``until_count``."""
    parent = psutil.Process(process.pid)
    seen: dict[psutil.Process, str] = {}
    deadline = time.monotonic() + timeout_s
    while process.poll() is None:
        with contextlib.suppress(psutil.Error):
            for child in parent.children(recursive=True):
                if child not in seen:
                    seen[child] = " ".join(child.cmdline())
        if until_count is not None and len(seen) >= until_count:
            break
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise AssertionError(f"the demo did not finish within {timeout_s} s")
        time.sleep(0.1)
    return seen


def run_demo(
    cwd: Path, *args: str, timeout_s: float = 900, extra_env: dict[str, str] | None = None
) -> tuple[int, str]:
    """Run the demo to its end; check it started a server and a worker and left neither."""
    process, output = start_demo(cwd, *args, extra_env=extra_env)
    children = watch_children(process, timeout_s)
    text = output.read_text(errors="replace")
    assert_no_survivors(children, cwd)
    commands = list(children.values())
    assert any(" server " in c for c in commands) and any(c.endswith(" worker") for c in commands)
    return int(process.returncode), text


def assert_no_survivors(children: dict[psutil.Process, str], root: Path) -> None:
    """No child of the demo still runs, and no process at all runs inside ``root``."""

    def alive(proc: psutil.Process) -> bool:
        try:
            return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    survivors = [command for child, command in children.items() if alive(child)]
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if alive(proc) and Path(proc.cwd()).is_relative_to(root):
                survivors.append(" ".join(proc.cmdline()))
    assert not survivors, f"still running after the demo exited: {survivors}"


def demo_outputs(data_dir: Path) -> tuple[list[Path], list[Path]]:
    """The stacked FITS files and the thumbnails of every run under ``data_dir``."""
    stacks = sorted(data_dir.glob("run-*/results/crowdsky/stacks/user_*/*/*.fits"))
    thumbs = sorted(data_dir.glob("run-*/results/crowdsky/stacks/user_*/*/*.png"))
    return stacks, thumbs


def check_stack(path: Path, min_frames: int) -> None:
    with fits.open(path) as hdul:
        hdul.verify("exception")
        assert [h.name for h in hdul][:4] == ["PRIMARY", "RED", "GREEN", "BLUE"]
        assert hdul[0].header["NCOMBINE"] >= min_frames
        assert "BAYERPAT" not in hdul[0].header


def check_thumbnail(path: Path) -> None:
    """A PNG that Pillow decodes completely, at most 512 pixels on a side."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
    with Image.open(path) as image:
        image.load()
        assert image.mode in ("RGB", "L")
        assert min(image.size) > 0 and max(image.size) <= 512


def assert_raws_kept_for_restacks(data_dir: Path, out: str, expected: int | None = None) -> None:
    """The server keeps the stacked raws for its re-stack window, and the demo says how many."""
    kept = list(data_dir.glob("run-*/server/uploads/**/*.fit"))
    assert kept and (expected is None or len(kept) == expected)
    flat = " ".join(out.split())
    assert f"{len(kept)} raw frames stay in the server's buffer for 24 h" in flat, out
    assert not list(data_dir.glob("run-*/server/uploads/**/.*")), "no partial upload left"


def test_demo_runs_a_small_night_and_produces_valid_stacks(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    code, out = run_demo(
        tmp_path, "--night", "small", "--data-dir", str(data_dir), "--timeout", "600"
    )
    assert code == 0, out
    assert "stacks" in out and "rejected frames (why)" in out
    assert "transparency" in out  # the cloudy frame is rejected with its reason
    stacks, thumbs = demo_outputs(data_dir)
    assert len(stacks) == 4 and len(thumbs) == 4  # 2 targets x 2 chunks
    for path in stacks:
        assert str(path) in out
        check_stack(path, min_frames=4)
    for path in thumbs:
        assert str(path) in out
        check_thumbnail(path)
    # everything was shut down (run_demo checked the processes); the raws stay for re-stacks
    assert_raws_kept_for_restacks(data_dir, out)


def test_demo_stacks_the_frames_of_a_folder(tmp_path: Path) -> None:
    from crowdsky.simulate import SequenceSpec, simulate_sequence

    frames = tmp_path / "my frames"  # a space, as in a Seestar's own folder names
    simulate_sequence(frames, SequenceSpec(n_frames=4, seed=61, shape=FRAME_SHAPE))
    data_dir = tmp_path / "demo"
    code, out = run_demo(
        tmp_path, "--frames", str(frames), "--data-dir", str(data_dir), "--timeout", "600"
    )
    assert code == 0, out
    assert "simulating" not in out and not list(data_dir.glob("run-*/night"))
    stacks, thumbs = demo_outputs(data_dir)
    assert len(stacks) == 1 and len(thumbs) == 1, out  # four frames: one chunk, one job
    assert str(stacks[0]) in out and str(thumbs[0]) in out
    check_stack(stacks[0], min_frames=4)
    check_thumbnail(thumbs[0])
    assert_raws_kept_for_restacks(data_dir, out, expected=4)


def test_demo_runs_in_a_temporary_folder_and_removes_it_unless_kept(tmp_path: Path) -> None:
    from crowdsky.simulate import SequenceSpec, simulate_sequence

    frames = tmp_path / "frames"
    simulate_sequence(frames, SequenceSpec(n_frames=4, seed=62, shape=FRAME_SHAPE))
    temp = tmp_path / "tmp"
    temp.mkdir()
    args = ("--frames", str(frames), "--timeout", "600")
    code, out = run_demo(tmp_path, *args, extra_env={"TMPDIR": str(temp)})
    assert code == 0, out
    assert f"CrowdSky demo in {temp}" in out.replace("\n", "")
    assert "removed" in out and list(temp.iterdir()) == [], "nothing left behind"
    assert "until the demo ends (--keep keeps them):" in out.replace("\n", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo-output.txt", "frames", "tmp"]
    code, out = run_demo(tmp_path, *args, "--keep", extra_env={"TMPDIR": str(temp)})
    assert code == 0, out
    (kept,) = temp.iterdir()
    assert f"kept {kept}" in out and len(list(kept.glob("run-*/results/**/*.fits"))) == 1
    assert "until the demo ends" not in out


def test_demo_stopped_with_sigterm_stops_its_server_and_worker(tmp_path: Path) -> None:
    process, output = start_demo(tmp_path, "--night", "small", "--data-dir", str(tmp_path / "d"))
    children = watch_children(process, 120, until_count=2)  # the server and the worker
    assert process.poll() is None, output.read_text(errors="replace")
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)
    assert process.returncode != 0
    assert_no_survivors(children, tmp_path)


def test_demo_reports_a_missing_frames_folder(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "crowdsky",
            "demo",
            "--frames",
            str(tmp_path / "nope"),
            "--data-dir",
            str(tmp_path / "demo"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "is not a folder" in result.stdout + result.stderr


def test_a_sigterm_lost_in_a_finalizer_is_delivered_again() -> None:
    """Python drops an exception raised while a finalizer or weakref callback runs (the
    demo then ran to its end and exited 0 once, in CI). The demo's SIGTERM handling
    keeps re-sending the signal until the clean-up starts, then lets it run."""
    from crowdsky.cli.demo import _SigtermInterrupt

    guard = _SigtermInterrupt()
    try:
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1.0)
            except KeyboardInterrupt:
                pass  # lost, as it is when raised inside a finalizer
            time.sleep(5.0)  # the demo carries on: the signal must come again
        assert time.monotonic() - started < 3.0
        guard.stopping()
        os.kill(os.getpid(), signal.SIGTERM)  # during the clean-up: no interruption
        time.sleep(2 * _SigtermInterrupt.RETRY_S)
    finally:
        guard.stopping()
        guard.restore()
