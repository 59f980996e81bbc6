"""``crowdsky stack FILES... -o OUT.fits [--json]``: stack frames on this machine.

Parses options, calls :func:`crowdsky.stacking.stack_files`, shows a rich progress
bar when stdout is a terminal, and prints either a short summary or, with
``--json``, the :class:`~crowdsky.stacking.StackResult` as JSON (nothing else goes to
stdout then, so the output can be piped). Exit codes: 0 success, 1 no usable frames
or stacking failure, 2 invalid input.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from crowdsky.stacking import StackParams, StackProgress, StackResult

__all__ = ["register"]

ONE_FRAME_NOTE = (
    "a single frame was given, so nothing could be checked or rejected: registration, "
    "frame quality checks and outlier rejection compare frames with each other; "
    "the output is that frame alone"
)


def register(app: typer.Typer) -> None:
    """Add the ``stack`` command to the CrowdSky CLI."""
    app.command("stack")(stack)


def stack(  # noqa: PLR0913 (a Typer command: one parameter per option)
    files: Annotated[list[Path], typer.Argument(help="Input FITS frames.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output FITS file.")],
    method: Annotated[str, typer.Option(help="Combination: mean or median.")] = "mean",
    sigma_clip: Annotated[float, typer.Option(help="Rejection threshold in robust sigma.")] = 3.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON on stdout.")
    ] = False,
    thumbnail: Annotated[
        Path | None, typer.Option(help="Also write a preview here (PNG, or JPEG for .jpg).")
    ] = None,
    thumbnail_size: Annotated[
        int, typer.Option(help="Longest side of the preview, px (1024 for a lightbox).")
    ] = 512,
    stretch: Annotated[str, typer.Option(help="Thumbnail stretch: linear or auto.")] = "auto",
    memory_limit_mb: Annotated[
        int | None, typer.Option(help="Working-memory budget in MiB.")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="Threads to use.")] = None,
) -> None:
    """Register and stack FITS frames into one multi-extension FITS file."""
    from crowdsky.stacking import (
        InvalidInput,
        NoUsableFrames,
        StackingError,
        StackParams,
        generate_thumbnail,
        stack_files,
    )

    try:
        changes: dict[str, object] = {"method": method, "sigma_clip": sigma_clip}
        if memory_limit_mb is not None:
            changes["memory_limit_bytes"] = memory_limit_mb * 1024 * 1024
        if threads is not None:
            changes["n_threads"] = threads
        params = StackParams(**changes)  # type: ignore[arg-type]
        if sys.stdout.isatty() and not as_json:
            result = _stack_with_bar(stack_files, files, output, params)
        else:
            result = stack_files(files, output, params=params)
        if thumbnail is not None:
            generate_thumbnail(output, thumbnail, max_size=thumbnail_size, stretch=stretch)
    except InvalidInput as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except NoUsableFrames as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    except StackingError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc

    if result.n_frames_input == 1:  # on stderr, so that --json output stays JSON
        typer.echo(f"note: {ONE_FRAME_NOTE}", err=True)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    typer.echo(
        f"{result.output_path}: {result.n_aligned}/{result.n_frames_input} frames stacked, "
        f"{result.total_exptime:g} s total exposure, {result.n_stars_detected} stars, "
        f"{result.timings_s.get('total', 0.0):.2f} s"
    )
    for frame in result.frames:
        if not frame.accepted:
            typer.echo(f"  rejected {frame.filename}: {frame.reason}")


def _stack_with_bar(
    stack_files: Callable[..., StackResult],
    files: list[Path],
    output: Path,
    params: StackParams,
) -> StackResult:
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def on_progress(event: StackProgress) -> None:
            if event.stage not in tasks:
                tasks[event.stage] = bar.add_task(event.stage, total=max(event.total, 1))
            bar.update(tasks[event.stage], completed=event.done, total=max(event.total, 1))

        return stack_files(files, output, params=params, progress=on_progress)
