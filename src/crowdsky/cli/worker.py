"""``crowdsky worker [--once]``: run a stacking worker (logic in :mod:`crowdsky.worker.main`).

The options come from :data:`crowdsky.worker.options.WORKER_OPTIONS`, the table
``python -m crowdsky.worker`` reads too; this module turns it into a Typer
signature.
"""

from __future__ import annotations

import inspect
from typing import Any

import typer

from crowdsky.worker.options import WORKER_OPTIONS, WorkerOption


def register(app: typer.Typer) -> None:
    """Add the ``worker`` command to the CLI."""
    from crowdsky.worker.main import EXIT_CODES

    def worker(**values: Any) -> None:
        from crowdsky.worker.errors import ConfigError
        from crowdsky.worker.main import EXIT_CONFIG
        from crowdsky.worker.main import run as run_worker

        try:
            code = run_worker(**values)
        except ConfigError as exc:
            typer.echo(f"crowdsky worker: {exc}", err=True)
            raise typer.Exit(EXIT_CONFIG) from exc
        raise typer.Exit(code)

    parameters = [_typer_parameter(option) for option in WORKER_OPTIONS]
    worker.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    worker.__annotations__ = {p.name: p.annotation for p in parameters}
    worker.__doc__ = (
        "Claim stacking jobs, stack them and publish the results (daemon or --once).\n\n"
        "Exit codes of --once:\n"
        + "\n".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items())
    )
    app.command("worker")(worker)


def _typer_parameter(option: WorkerOption) -> inspect.Parameter:
    """One keyword parameter whose default is the Typer option of ``option``."""
    flags = option.flag if option.off_flag is None else f"{option.flag}/{option.off_flag}"
    annotation: Any = option.kind if option.default is not None else option.kind | None
    return inspect.Parameter(
        option.name,
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(option.default, flags, help=option.help),
        annotation=annotation,
    )
