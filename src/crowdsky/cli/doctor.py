"""``crowdsky doctor``: check this machine's server or worker configuration and say what to fix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from crowdsky.cli.database_access import DatabaseUrlOption, DataDirOption
from crowdsky.cli.exits import fail

MARK = {"ok": "[green]ok[/]     ", "info": "[yellow]note[/]   ", "problem": "[red]PROBLEM[/]"}
ROLES = ("auto", "server", "worker")


def register(app: typer.Typer) -> None:
    """Add the ``doctor`` command."""
    app.command("doctor")(doctor)


def doctor(
    role: Annotated[
        str,
        typer.Option(
            "--role",
            help="What to check: server, worker, or auto (the server when its settings or "
            "data folder are here, the worker when API_BASE_URL is set).",
        ),
    ] = "auto",
    env_file: Annotated[Path, typer.Option("--env-file", help="The worker's dotenv file.")] = Path(
        ".env"
    ),
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    server: Annotated[
        str | None,
        typer.Option("--server", help="Also check that a CrowdSky server answers at this URL."),
    ] = None,
) -> None:
    """Check the configuration end to end and print what to fix.

    Server: settings, database (exists, reachable, newest schema), upload folder.
    Worker: settings, server reachable, key accepted, result store writable, and the
    optional plate solver and Siril (reported, not failures).

    Exit codes: 0 no problem found, 1 a problem was found, 2 usage.
    """
    from crowdsky import doctor as checks

    if role not in ROLES:
        raise fail(f"--role must be one of {', '.join(ROLES)}")
    console = Console(highlight=False, soft_wrap=True)
    groups = []
    if role == "server" or (role == "auto" and _server_here(data_dir, database_url)):
        groups.append(
            ("server", checks.server_checks(data_dir=data_dir, database_url=database_url))
        )
    if role == "worker" or (role == "auto" and _worker_here(env_file)):
        groups.append(("worker", checks.worker_checks(env_file)))
    if server:
        groups.append(("server URL", checks.server_url_checks(server)))
    if not groups:
        raise fail(
            "nothing to check here: no server settings or data folder (crowdsky-data, "
            "CROWDSKY_DATA_DIR, CROWDSKY_DATABASE_URL) and no worker API_BASE_URL (environment "
            f"or {env_file}); use --role server, --role worker or --server URL"
        )
    problems = 0
    for title, found in groups:
        console.print(f"[bold]{title}[/]")
        for check in found:
            console.print(f"  {MARK[check.status]} {check.name}: {check.detail}")
            if check.fix and check.status != "ok":
                console.print(f"           fix: {check.fix}")
            problems += check.status == "problem"
    if problems:
        console.print(f"{problems} problem(s) found")
        raise typer.Exit(1)
    console.print("no problem found")


def _server_here(data_dir: Path | None, database_url: str | None) -> bool:
    if data_dir or database_url:
        return True
    if os.environ.get("CROWDSKY_DATA_DIR") or os.environ.get("CROWDSKY_DATABASE_URL"):
        return True
    return Path("crowdsky-data").is_dir()


def _worker_here(env_file: Path) -> bool:
    if os.environ.get("API_BASE_URL"):
        return True
    try:
        return any(line.strip().startswith("API_BASE_URL") for line in env_file.open())
    except OSError:
        return False
