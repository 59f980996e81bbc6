"""``crowdsky export STACK.fits -o OUT [--format cube|tiff]``: an interchange copy.

Calls :func:`crowdsky.stacking.write_export`. The format defaults from the output's
suffix (``.tif``/``.tiff`` give a 16-bit TIFF, anything else the primary-HDU FITS
cube). Exit codes: 0 success, 2 invalid input, 1 the file could not be written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``export`` command to the CrowdSky CLI."""
    app.command("export")(export)


def export(
    stack: Annotated[Path, typer.Argument(help="A CrowdSky stack (multi-extension FITS).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="File to write.")],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", help="cube (primary-HDU RGB FITS) or tiff (16-bit RGB); default: suffix."
        ),
    ] = None,
) -> None:
    """Write a stack as a file Siril, DS9 or an image editor opens."""
    from crowdsky.stacking import InvalidInput, OutputError, write_export

    chosen = fmt or ("tiff" if output.suffix.lower() in (".tif", ".tiff") else "cube")
    try:
        written = write_export(stack, output, chosen)
    except InvalidInput as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except OutputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{written}: {chosen}, {written.stat().st_size / 1e6:.1f} MB")
