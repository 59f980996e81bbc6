"""`crowdsky demo`: run the whole service on this machine and show what it produced."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from crowdsky.cli.exits import fail


def register(app: typer.Typer) -> None:
    """Add the demo command."""
    app.command("demo")(demo)


def demo(
    frames: Annotated[
        Path | None,
        typer.Option(help="Upload the FITS frames in this folder instead of a simulated night."),
    ] = None,
    night: Annotated[
        str, typer.Option(help="Simulated night: 'full' (3 targets, 90 frames) or 'small'.")
    ] = "full",
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder for the run (server data, results, logs), kept afterwards. "
            "Default: a new temporary folder, removed at the end unless --keep.",
            show_default=False,
        ),
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the temporary folder (stacks, logs) afterwards.")
    ] = False,
    serve: Annotated[
        bool, typer.Option(help="Keep the server running afterwards (Ctrl-C stops it).")
    ] = False,
    port: Annotated[int | None, typer.Option(help="Server port (default: a free one).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the simulated night.")] = 2025,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 1800.0,
) -> None:
    """Start a server and a worker, upload a night of Seestar frames, stack it, show the stacks."""
    from crowdsky import demo as demo_run
    from crowdsky.launch import LaunchError

    if night not in ("full", "small"):
        raise fail("--night must be 'full' or 'small'")
    if frames is not None and not frames.is_dir():
        raise fail(f"--frames {frames} is not a folder", code=1)
    # a wide console even when the output is a file or a pipe: the tables need it
    console = Console(width=None if Console().is_terminal else 160)
    temporary = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="crowdsky-demo-")) if data_dir is None else data_dir
    options = demo_run.DemoOptions(
        root=root,
        frames_dir=frames,
        scale=night,
        seed=seed,
        serve=serve,
        port=port,
        timeout_s=timeout,
    )
    run = demo_run.DemoRun(demo_run.new_run_dir(root))
    console.print(f"[bold]CrowdSky demo[/] in {run.run_dir}")
    services = _Services()
    sigterm = _SigtermInterrupt()
    try:
        rows = _run_demo(console, run, options, services, removed_at_end=temporary and not keep)
        if serve:
            _serve(console, run)
        if any(row.status != "completed" for row in rows):
            raise typer.Exit(1)
    except (demo_run.DemoError, LaunchError) as exc:
        services.print_logs(console)
        raise fail(str(exc), code=1) from exc
    finally:
        sigterm.stopping()
        services.stop()
        sigterm.restore()
        if temporary and not keep:
            shutil.rmtree(root, ignore_errors=True)
            console.print(f"removed {root} (--keep keeps it; --data-dir DIR runs in DIR)")
        elif temporary:
            console.print(f"kept {root}")


@dataclass
class _Services:
    """The demo's server and worker processes, once started (None before)."""

    server: Any = None  # launch.ManagedProcess, imported with the demo
    worker: Any = None

    def print_logs(self, console: Console) -> None:
        """Where to look when the demo failed."""
        if self.worker is not None:
            console.print(f"worker log: {self.worker.log_path}")
        if self.server is not None:
            console.print(f"server log: {self.server.log_path}")

    def stop(self) -> None:
        """Stop the worker, then the server."""
        if self.worker is not None:
            self.worker.stop()
        if self.server is not None:
            self.server.stop()


def _run_demo(
    console: Console, run: Any, options: Any, services: _Services, *, removed_at_end: bool
) -> list[Any]:
    """Start the services, upload the frames, follow the jobs, check and show the stacks
    (``removed_at_end``: the demo's temporary folder goes when it ends)."""
    from crowdsky import demo as demo_run

    started = time.monotonic()
    with console.status("starting the server and a worker"):
        services.server, services.worker = demo_run.start_services(run, options)
    console.print(f"server at {run.server_url} (SQLite, local storage); worker running")
    frames_dir = demo_run.prepare_frames(options, run, console.print)
    console.print("uploading through the upload API")
    job_ids = demo_run.upload_frames(run, frames_dir, console.print)
    if not job_ids:
        raise demo_run.DemoError("the upload created no jobs (see the skipped chunks above)")
    jobs = _follow(console, run, services.worker, options)
    rows = demo_run.summarize(run, jobs)
    for row in rows:
        if row.fits_path is not None:
            demo_run.check_stack(row.fits_path)
    console.print(_results_table(rows))
    _print_outputs(console, run, rows, removed_at_end)
    console.print(f"done in {time.monotonic() - started:.1f} s")
    return rows


class _SigtermInterrupt:
    """Make SIGTERM end the demo as Ctrl-C does, so the server and worker are stopped too.

    The handler raises KeyboardInterrupt in the main thread. Python ignores (prints and
    drops) an exception raised while a finalizer or weakref callback happens to run,
    so one raise is not enough: until the demo reaches its clean-up, SIGTERM is sent
    again every half second. Once :meth:`stopping` is called, further signals are
    ignored so the clean-up runs to the end. Outside the main thread nothing changes.
    """

    RETRY_S = 0.5

    def __init__(self) -> None:
        self._cleaning = threading.Event()
        self._requested = False
        self._previous: Any = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._cleaning.is_set():
            return
        if not self._requested:
            self._requested = True
            threading.Thread(target=self._insist, name="demo-sigterm", daemon=True).start()
        raise KeyboardInterrupt

    def _insist(self) -> None:
        while not self._cleaning.wait(self.RETRY_S):
            os.kill(os.getpid(), signal.SIGTERM)

    def stopping(self) -> None:
        """The clean-up starts: SIGTERM no longer interrupts."""
        self._cleaning.set()

    def restore(self) -> None:
        """Put back the handler found at start."""
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _follow(console: Console, run: Any, worker: Any, options: Any) -> list[dict[str, Any]]:
    from crowdsky import demo as demo_run

    if not console.is_terminal:
        last: dict[int, str] = {}

        def print_changes(jobs: list[dict[str, Any]]) -> None:
            for job in jobs:
                if last.get(job["job_id"]) != job["status"]:
                    last[job["job_id"]] = job["status"]
                    console.print(f"job {job['job_id']} {job['chunk_key']}: {job['status']}")

        return demo_run.wait_for_jobs(run, worker, print_changes, options.timeout_s)
    with Live(_progress_table([]), console=console, refresh_per_second=4) as live:
        return demo_run.wait_for_jobs(
            run,
            worker,
            lambda jobs: live.update(_progress_table(jobs)),
            options.timeout_s,
        )


STATUS_STYLE = {
    "pending": "dim",
    "processing": "cyan",
    "retry": "yellow",
    "completed": "green",
    "failed": "bold red",
}


def _progress_table(jobs: list[dict[str, Any]]) -> Table:
    table = Table(title="jobs", expand=False)
    for column in ("job", "chunk", "object", "frames", "status", "progress"):
        table.add_column(column)
    for job in jobs:
        progress = job.get("progress")
        bar = ""
        if progress is not None and job["status"] == "processing":
            filled = int(progress * 20)
            bar = "█" * filled + "░" * (20 - filled) + f" {progress:4.0%}"
            if job.get("progress_message"):
                bar += f" {job['progress_message']}"
        status = job["status"]
        table.add_row(
            str(job["job_id"]),
            job["chunk_key"],
            job["object_name"] or "?",
            str(job["frame_count"]),
            f"[{STATUS_STYLE.get(status, '')}]{status}[/]",
            bar,
        )
    return table


def _results_table(rows: list[Any]) -> Table:
    table = Table(title="stacks", show_lines=True)
    table.add_column("chunk key", no_wrap=True)
    table.add_column("object", no_wrap=True)
    table.add_column("frames used", justify="right")
    table.add_column("rejected frames (why)", overflow="fold", min_width=24)
    for column in ("stars", "exposure", "time"):
        table.add_column(column, justify="right", no_wrap=True)
    for row in rows:
        used = "—" if row.frames_used is None else f"{row.frames_used}/{row.frames_total}"
        why = "\n".join(row.rejected) if row.rejected else "none"
        if row.error:
            why = f"[red]{row.status}: {row.error}[/]"
        table.add_row(
            row.chunk_key,
            row.object_name or "?",
            used,
            why,
            "—" if row.stars is None else str(row.stars),
            "—" if row.exposure_s is None else f"{row.exposure_s:.0f} s",
            "—" if row.seconds is None else f"{row.seconds:.1f} s",
        )
    return table


def _print_outputs(console: Console, run: Any, rows: list[Any], removed_at_end: bool) -> None:
    from crowdsky import demo as demo_run
    from crowdsky.config import DEFAULT_RESTACK_WINDOW_HOURS

    def say(text: str) -> None:
        console.print(text, soft_wrap=True, highlight=False)

    until = " until the demo ends (--keep keeps them)" if removed_at_end else ""
    say(f"\nstacked FITS files and thumbnails are under {run.results_dir}{until}:")
    for row in rows:
        if row.fits_path is not None:
            say(f"  {row.fits_path}")
        if row.thumbnail_path is not None:
            say(f"  {row.thumbnail_path}")
    for skipped in run.skipped:
        say(f"skipped chunk: {skipped}")
    kept = demo_run.kept_raw_frames(run)
    if kept:
        say(
            f"{kept} raw frames stay in the server's buffer for "
            f"{DEFAULT_RESTACK_WINDOW_HOURS:g} h, so that frames of the same slots uploaded "
            "later are stacked with them (CROWDSKY_RESTACK_WINDOW_HOURS)"
        )
    say(f"logs: {run.run_dir / 'worker.log'}, {run.server_dir}")


def _serve(console: Console, run: Any) -> None:
    from crowdsky.demo import web_login

    stacks_url = web_login(run)
    console.print(
        f"\nserver keeps running at {run.server_url} — user {run.username!r}, password "
        f"{run.password!r} (HTTP Basic); e.g. {run.server_url}/api/my_stacks.php. "
        "Ctrl-C stops it."
    )
    console.print(
        f"web app: {run.server_url}/  (the demo user logged in there just now; log in "
        f"at {run.server_url}/login with the same name and password, then see {stacks_url})"
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopping")
