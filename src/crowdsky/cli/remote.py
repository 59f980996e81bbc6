"""Options and sign-in shared by the commands that talk to a server as a user.

``crowdsky upload``, ``crowdsky jobs`` and ``crowdsky stacks`` take the same
``--server``, ``--api-key`` / ``--user`` and ``--password`` options (also read from
``CROWDSKY_SERVER``, ``CROWDSKY_API_KEY``, ``CROWDSKY_USER``, ``CROWDSKY_PASSWORD``).
A user name without a password prompts for it when the standard input is a terminal;
otherwise the command says which option or variable to set.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Annotated

import typer

from crowdsky.cli.exits import fail

ServerOption = Annotated[
    str,
    typer.Option(
        "--server",
        envvar="CROWDSKY_SERVER",
        help="Server base URL, e.g. https://crowdsky.example.org (without /api).",
    ),
]
UserOption = Annotated[
    str | None, typer.Option("--user", envvar="CROWDSKY_USER", help="User name or email.")
]
PasswordOption = Annotated[
    str | None,
    typer.Option(
        "--password",
        envvar="CROWDSKY_PASSWORD",
        help="Password (asked on a terminal when --user is given without it).",
        show_default=False,
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key", envvar="CROWDSKY_API_KEY", help="API key (csk_...).", show_default=False
    ),
]


@dataclass(frozen=True)
class Credentials:
    """How to sign in: an API key, or a user name and password."""

    server: str
    api_key: str | None = None
    username: str | None = None
    password: str | None = None


def credentials(
    server: str, user: str | None, password: str | None, api_key: str | None
) -> Credentials:
    """Check the server URL and the sign-in options; prompt for a password on a terminal.

    Raises ``typer.Exit(2)`` with the fix when something is missing or malformed.
    """
    from crowdsky.upload_client import server_url_problem

    problem = server_url_problem(server)
    if problem:
        raise fail(problem)
    server = server.strip().rstrip("/")
    if api_key:
        return Credentials(server, api_key=api_key)
    if not user:
        raise fail(
            "sign in with --api-key (or CROWDSKY_API_KEY), or --user (or CROWDSKY_USER) "
            "and a password"
        )
    if not password:
        if not sys.stdin.isatty():
            raise fail(
                f"no password for {user!r}: give --password or set CROWDSKY_PASSWORD "
                "(or run on a terminal to be asked)"
            )
        password = typer.prompt(f"Password for {user}", hide_input=True)
    return Credentials(server, username=user, password=password)
