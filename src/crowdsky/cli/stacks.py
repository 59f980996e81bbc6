"""``crowdsky stacks list|show|download``: your finished stacks on a server.

A table on a terminal, ``--json`` for scripts, a progress bar on downloads. Exit
codes: 0 done, 1 no such stack, 2 usage or sign-in problem, 3 server unreachable or
credentials refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from crowdsky.cli.exits import fail
from crowdsky.cli.jobs import JsonOption, call, client_for
from crowdsky.cli.remote import ApiKeyOption, PasswordOption, ServerOption, UserOption

stacks_app = typer.Typer(help="Your finished stacks on a server.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``stacks`` command family."""
    app.add_typer(stacks_app, name="stacks")


@stacks_app.command("list")
def list_stacks(
    server: ServerOption,
    user: UserOption = None,
    password: PasswordOption = None,
    api_key: ApiKeyOption = None,
    object_name: Annotated[
        str | None, typer.Option("--object", help="Only stacks of this object.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List your stacks, newest observation first."""
    with client_for(server, user, password, api_key) as client:
        stacks = call(lambda: client.my_stacks(object_name=object_name))
    if as_json:
        typer.echo(json.dumps(stacks, indent=2))
        return
    console = Console(highlight=False)
    if not stacks:
        console.print("no stacks yet (`crowdsky jobs list` shows jobs still running)")
        return
    table = Table(show_edge=False)
    for column in ("id", "chunk key", "object", "filter", "frames", "exposure", "observed"):
        table.add_column(column, overflow="fold")
    for stack in stacks:
        table.add_row(
            str(stack["id"]),
            stack["chunk_key"],
            stack.get("object_name") or "?",
            stack.get("filter_name") or "",
            f"{stack['n_frames_aligned']}/{stack['n_frames_input']}",
            f"{stack.get('total_exptime') or 0:g} s",
            (stack.get("date_obs_start") or "")[:16],
        )
    console.print(table)


@stacks_app.command("show")
def show_stack(
    stack: Annotated[str, typer.Argument(help="Chunk key or stack id.")],
    server: ServerOption,
    user: UserOption = None,
    password: PasswordOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one stack's details."""
    with client_for(server, user, password, api_key) as client:
        stacks = call(client.my_stacks)
    found = _find(stacks, stack)
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    console = Console(highlight=False, soft_wrap=True)
    for key, value in found.items():
        console.print(f"{key + ':':<18} {'' if value is None else value}")


def _find(stacks: list[dict[str, Any]], wanted: str) -> dict[str, Any]:
    for stack in stacks:  # newest observation first: the newest stack of a chunk key wins
        if stack["chunk_key"] == wanted or str(stack["id"]) == wanted:
            return stack
    raise fail(f"no stack {wanted!r} among yours (`crowdsky stacks list` shows them)", code=1)


@stacks_app.command("download")
def download_stack(
    chunk_key: Annotated[str, typer.Argument(help="Chunk key (from `crowdsky stacks list`).")],
    server: ServerOption,
    user: UserOption = None,
    password: PasswordOption = None,
    api_key: ApiKeyOption = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder or file to write.")] = Path(
        "."
    ),
) -> None:
    """Download a stack's FITS file (the server's file name, into the current folder)."""
    from crowdsky.user_client import UserApiError

    if not output.is_dir() and not output.parent.is_dir():
        raise fail(f"{output.parent} is not a folder")
    console = Console(highlight=False, soft_wrap=True, stderr=True)
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
    )
    task = progress.add_task("", total=None)

    def started(name: str, size: int | None) -> None:
        progress.update(task, description=name, total=size)
        progress.start()

    try:
        with client_for(server, user, password, api_key) as client:
            path = client.download_stack(
                chunk_key,
                output,
                on_start=started,
                on_bytes=lambda n: progress.advance(task, n),
            )
    except UserApiError as exc:
        progress.stop()
        if exc.status_code == 404:
            raise fail(f"{exc} (`crowdsky stacks list` shows your chunk keys)", code=1) from exc
        raise fail(str(exc), code=3 if exc.status_code in (None, 401, 403) else 1) from exc
    progress.stop()
    typer.echo(str(path))
