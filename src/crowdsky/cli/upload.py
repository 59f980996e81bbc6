"""``crowdsky upload DIR``: send a folder of raw frames to a server and queue the jobs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from crowdsky.cli.exits import fail
from crowdsky.cli.remote import ApiKeyOption, PasswordOption, ServerOption, UserOption, credentials

if TYPE_CHECKING:
    from crowdsky.upload_client import FileOutcome, UploadReport

console = Console()

#: The server's advice to an API client, and what a user of this command does instead.
SERVER_OVERWRITE_ADVICE = "upload the files again and finalize with overwrite=1"
CLI_OVERWRITE_ADVICE = "run this upload again with --overwrite"


def register(app: typer.Typer) -> None:
    """Add the ``upload`` command."""
    app.command("upload")(upload)


def upload(
    folder: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="Folder with FITS files.")
    ],
    server: ServerOption,
    user: UserOption = None,
    password: PasswordOption = None,
    api_key: ApiKeyOption = None,
    parallel: Annotated[int, typer.Option("--parallel", min=1, max=32, help="Connections.")] = 4,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Stack chunks again that already have a stack.")
    ] = False,
    scrub_location: Annotated[
        bool, typer.Option("--scrub-location", help="Remove SITELAT/SITELONG on the server.")
    ] = False,
) -> None:
    """Upload every FITS file in FOLDER, skip what the server has, finalize, list the jobs.

    Re-running after an interruption continues the same session and uploads only the
    missing files. The session is remembered in your cache folder
    (~/.cache/crowdsky/uploads on Linux), never in FOLDER.

    Exit codes: 0 done, 1 some files were refused, 2 usage or sign-in problem,
    3 server unreachable or credentials refused.
    """
    from crowdsky.upload_client import UploadClient, UploadError, find_fits_files, upload_folder

    files = find_fits_files(folder)
    if not files:
        raise fail(f"no FITS files (.fit, .fits, .fts) in {folder}")
    login = credentials(server, user, password, api_key)
    client = UploadClient(
        login.server,
        username=login.username,
        password=login.password,
        api_key=login.api_key,
        parallel=parallel,
    )
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
    )
    task = progress.add_task(f"{len(files)} files", total=sum(p.stat().st_size for p in files))

    def advance(size: int, outcome: FileOutcome | None) -> None:
        if not progress.live.is_started:  # the bar appears once the server has answered
            progress.start()
        if outcome is None:  # the server has it already: it is not part of the transfer
            left = (progress.tasks[0].total or 0) - size
            progress.update(task, total=max(left, 0), description=f"{len(files)} files")
        else:
            progress.advance(task, size)

    try:
        with client:
            report = upload_folder(
                client,
                folder,
                overwrite=overwrite,
                scrub_location=scrub_location,
                on_progress=advance,
                files=files,
            )
    except UploadError as exc:
        progress.stop()
        code = 3 if exc.status_code in (None, 401, 403) else 1
        hint = " (check --user/--password or --api-key)" if exc.status_code == 401 else ""
        raise fail(f"{exc}{hint}", code=code) from exc
    progress.stop()
    _print_report(report)
    if report.failed:
        raise typer.Exit(1)


def _print_report(report: UploadReport) -> None:
    sent = report.count("uploaded")
    console.print(
        f"session {report.session_token}{' (resumed)' if report.resumed else ''}: "
        f"{sent} uploaded, {report.count('duplicate')} duplicates, "
        f"{report.count('already_on_server')} already on the server, "
        f"{len(report.failed)} refused",
        highlight=False,
        soft_wrap=True,
    )
    for failed in report.failed:
        console.print(f"[red]refused[/] {failed.error}", highlight=False, soft_wrap=True)
    if not report.accepted:
        console.print(
            "[red]nothing to stack:[/] the server refused every file",
            highlight=False,
            soft_wrap=True,
        )
        return
    result = report.finalize
    for detail in result.get("chunk_details", []):
        console.print(
            f"job {detail['job_id']}: {detail['chunk_key']} ({detail['frames']} frames, "
            f"{detail.get('object_name') or 'unknown object'})",
            highlight=False,
            soft_wrap=True,
        )
    for skipped in result.get("skipped", []):
        reason = str(skipped["reason"]).replace(SERVER_OVERWRITE_ADVICE, CLI_OVERWRITE_ADVICE)
        console.print(
            f"[yellow]skipped[/] {skipped['chunk_key']}: {reason}", highlight=False, soft_wrap=True
        )
    jobs = int(result.get("jobs", 0))
    if report.already_finalized:
        console.print(
            f"this folder was uploaded and finalized before: nothing new was sent and no job "
            f"was queued now ({jobs} earlier job(s) listed above; `crowdsky jobs list` shows "
            "them, --overwrite stacks everything again)",
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print(f"{jobs} job(s) queued", highlight=False, soft_wrap=True)
