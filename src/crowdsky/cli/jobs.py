"""``crowdsky jobs list|show``: your stacking jobs on a server, with per-frame reasons.

A table on a terminal, ``--json`` for scripts. Exit codes: 0 done, 1 no such job,
2 usage or sign-in problem, 3 server unreachable or credentials refused.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from crowdsky.cli.exits import fail
from crowdsky.cli.remote import ApiKeyOption, PasswordOption, ServerOption, UserOption, credentials

jobs_app = typer.Typer(help="Your stacking jobs on a server.", no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]


def register(app: typer.Typer) -> None:
    """Add the ``jobs`` command family."""
    app.add_typer(jobs_app, name="jobs")


def client_for(server: str, user: str | None, password: str | None, api_key: str | None) -> Any:
    from crowdsky.user_client import UserClient

    login = credentials(server, user, password, api_key)
    return UserClient(
        login.server, api_key=login.api_key, username=login.username, password=login.password
    )


def call(operation: Any) -> Any:
    from crowdsky.user_client import UserApiError

    try:
        return operation()
    except UserApiError as exc:
        hint = " (check --user/--password or --api-key)" if exc.status_code == 401 else ""
        raise fail(f"{exc}{hint}", code=3 if exc.status_code in (None, 401, 403) else 1) from exc


@jobs_app.command("list")
def list_jobs(
    server: ServerOption,
    user: UserOption = None,
    password: PasswordOption = None,
    api_key: ApiKeyOption = None,
    session: Annotated[
        str | None, typer.Option("--session", help="Only the jobs of this upload session.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Newest N jobs.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """List your jobs: status, progress, frames used and why others were left out."""
    with client_for(server, user, password, api_key) as client:
        jobs = call(lambda: client.my_jobs(session_token=session, limit=limit))
    if as_json:
        typer.echo(json.dumps(jobs, indent=2))
        return
    console = Console(highlight=False)
    if not jobs:
        console.print("no jobs yet (`crowdsky upload FOLDER --server ...` creates them)")
        return
    table = Table(show_edge=False)
    for column in ("job", "chunk", "object", "status", "frames used", "left out / error"):
        table.add_column(column, overflow="fold")
    for job in jobs:
        stack = job.get("stack")
        used = f"{stack['n_frames_aligned']}/{stack['n_frames_input']}" if stack else "—"
        status = job["status"]
        if status == "processing" and job.get("progress") is not None:
            status += f" {job['progress']:.0%}"
        table.add_row(
            str(job["job_id"]),
            job["chunk_key"],
            job.get("object_name") or "?",
            status,
            used,
            _why(job),
        )
    console.print(table)


def _why(job: dict[str, Any]) -> str:
    if job["status"] in ("failed", "retry") and job.get("error_message"):
        return str(job["error_message"])
    left_out = (job.get("stack") or {}).get("rejected_frames") or []
    return "\n".join(f"{f['filename']}: {f['reason']}" for f in left_out)


@jobs_app.command("show")
def show_job(
    job_id: Annotated[int, typer.Argument(help="Job id (from `crowdsky jobs list`).")],
    server: ServerOption,
    user: UserOption = None,
    password: PasswordOption = None,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one job: every attempt's error, the stack, each frame left out and why."""
    with client_for(server, user, password, api_key) as client:
        job = call(lambda: client.job(job_id))
    if job is None:
        raise fail(f"no job {job_id} among your jobs (`crowdsky jobs list` shows them)", code=1)
    if as_json:
        typer.echo(json.dumps(job, indent=2))
        return
    console = Console(highlight=False, soft_wrap=True)
    console.print(f"job {job['job_id']}: {job['chunk_key']} ({job.get('object_name') or '?'})")
    console.print(f"  status:   {job['status']} after {job['attempts']} attempt(s)")
    console.print(f"  frames:   {job['frame_count']}")
    for name in ("created_at", "started_at", "completed_at"):
        if job.get(name):
            console.print(f"  {name.split('_')[0] + ':':<9} {job[name]}")
    for number, error in enumerate(job.get("errors") or [], 1):
        console.print(f"  error {number}:  {error}")
    stack = job.get("stack")
    if stack:
        console.print(
            f"  stack:    {stack['ucloud_path']} ({stack['n_frames_aligned']}/"
            f"{stack['n_frames_input']} frames, {stack.get('total_exptime') or 0:g} s, "
            f"{stack.get('n_stars_detected') or 0} stars)"
        )
        left_out = stack.get("rejected_frames") or []
        console.print(f"  left out: {len(left_out) or 'none'}")
        for frame in left_out:
            console.print(f"    {frame['filename']}: {frame['reason']}")
