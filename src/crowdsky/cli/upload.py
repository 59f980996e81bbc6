"""``crowdsky upload DIR``: send a folder of raw frames to a server and queue the jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from crowdsky.cli.common import fail

console = Console()


def register(app: typer.Typer) -> None:
    """Add the ``upload`` command."""
    app.command("upload")(upload)


def upload(
    folder: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="Folder with FITS files.")
    ],
    server: Annotated[
        str, typer.Option("--server", envvar="CROWDSKY_SERVER", help="Server base URL.")
    ],
    user: Annotated[
        str | None, typer.Option("--user", envvar="CROWDSKY_USER", help="User name or email.")
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password", envvar="CROWDSKY_PASSWORD", help="Password.", show_default=False
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key", envvar="CROWDSKY_API_KEY", help="API key (csk_...).", show_default=False
        ),
    ] = None,
    parallel: Annotated[int, typer.Option("--parallel", min=1, max=32, help="Connections.")] = 4,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Stack chunks again that already have a stack.")
    ] = False,
    scrub_location: Annotated[
        bool, typer.Option("--scrub-location", help="Remove SITELAT/SITELONG on the server.")
    ] = False,
) -> None:
    """Upload every FITS file in FOLDER, skip what the server has, finalize, list the jobs.

    Re-running after an interruption continues the same session
    (``.crowdsky-upload.json`` in the folder) and uploads only the missing files.
    """
    from crowdsky.upload_client import UploadClient, UploadError, find_fits_files, upload_folder

    files = find_fits_files(folder)
    if not files:
        raise fail(f"no FITS files (.fit, .fits, .fts) in {folder}")
    try:
        client = UploadClient(
            server, username=user, password=password, api_key=api_key, parallel=parallel
        )
    except ValueError as exc:
        raise fail(f"{exc} (--api-key, or --user and --password)") from exc
    total = sum(p.stat().st_size for p in files)
    with (
        client,
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
            transient=False,
        ) as progress,
    ):
        task = progress.add_task(f"{len(files)} files", total=total)

        def advance(size: int, outcome: object) -> None:
            progress.advance(task, size)

        try:
            report = upload_folder(
                client,
                folder,
                parallel=parallel,
                overwrite=overwrite,
                scrub_location=scrub_location,
                on_progress=advance,
                files=files,
            )
        except UploadError as exc:
            raise fail(str(exc)) from exc
    console.print(
        f"session {report.session_token}{' (resumed)' if report.resumed else ''}: "
        f"{report.count('uploaded')} uploaded, {report.count('duplicate')} duplicates, "
        f"{report.count('already_on_server')} already on the server, "
        f"{len(report.failed)} refused"
    )
    for failed in report.failed:
        console.print(f"[red]refused[/] {failed.error}")
    result = report.finalize
    for detail in result.get("chunk_details", []):
        console.print(
            f"job {detail['job_id']}: {detail['chunk_key']} ({detail['frames']} frames, "
            f"{detail.get('object_name') or 'unknown object'})"
        )
    for skipped in result.get("skipped", []):
        console.print(f"[yellow]skipped[/] {skipped['chunk_key']}: {skipped['reason']}")
    console.print(f"{result.get('jobs', 0)} job(s) queued")
    if report.failed:
        raise typer.Exit(1)
