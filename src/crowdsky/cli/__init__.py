"""The `crowdsky` command line: one Typer app, one module per command family.

Each module in this package defines a ``register(app)`` function that adds its
commands; this module only assembles them. Commands hold no domain logic: they
parse options, build settings and call into the core packages.

The console script registers only the module of the command it was given (the first
argument, looked up in :data:`COMMAND_MODULES`): ``crowdsky stack`` does not import
the server's, the worker's or the HTTP clients' modules (~0.3 s of a 1.8 s stack).
Anything else (``--help``, ``--version``, no or an unknown command) gets the full
app, as does ``from crowdsky.cli import app``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Annotated, Any

import typer

from crowdsky import __version__
from crowdsky.cli.help_format import CrowdskyGroup

MODULES = (
    "server",
    "admin",
    "stack",
    "export",
    "worker",
    "demo",
    "users",
    "upload",
    "jobs",
    "stacks",
    "doctor",
)
"""Command modules, in the order their commands are listed in ``crowdsky --help``."""
COMMAND_MODULES = {
    "server": "server",
    "cleanup": "server",
    "db": "server",
    "worker-token": "admin",
    "stack": "stack",
    "export": "export",
    "worker": "worker",
    "demo": "demo",
    "user": "users",
    "upload": "upload",
    "jobs": "jobs",
    "stacks": "stacks",
    "doctor": "doctor",
}
"""Top-level command (or command group) -> the module that registers it
(``tests/cli/test_help.py`` checks the table against the full app)."""


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"crowdsky {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """CrowdSky: crowd-sourced stacking for smart-telescope astronomers."""


def build_app(modules: tuple[str, ...] = MODULES) -> typer.Typer:
    """The Typer app with the commands of ``modules`` (default: all)."""
    cli = typer.Typer(
        name="crowdsky",
        cls=CrowdskyGroup,
        help="CrowdSky: crowd-sourced stacking for smart-telescope astronomers.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    cli.callback()(_root)
    for name in modules:
        importlib.import_module(f"crowdsky.cli.{name}").register(cli)
    return cli


def __getattr__(name: str) -> Any:
    if name == "app":  # the full CLI, built on first use
        full = build_app()
        globals()["app"] = full
        return full
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


QUICK_EXIT_COMMANDS = frozenset({"stack"})
"""Commands after which the console script skips the interpreter's teardown."""


def main() -> None:
    """Entry point of the `crowdsky` console script.

    After ``crowdsky stack`` the process ends without the interpreter's teardown
    (unloading numba's LLVM, astropy and the thread pools took ~0.4 s, a fifth of a
    15-frame stack): the output is complete, renamed into place and closed, and the
    standard streams and log handlers are flushed first. Every other command exits
    normally. ``crowdsky stack`` also keeps no buffers for reuse: their memory goes
    back to the kernel while the stack is still being written
    (``stacking.memory.discard_released``), not at exit, which the caller waits for.
    """
    module = COMMAND_MODULES.get(sys.argv[1]) if len(sys.argv) > 1 else None
    try:
        if module == "stack":
            from crowdsky.cli import stack
            from crowdsky.stacking import memory

            memory.discard_released()  # one stack: return memory as soon as it is free
            stack.run_fast(sys.argv[2:])  # exits, unless Typer must parse
        cli = build_app((module,)) if module is not None else __getattr__("app")
        cli()
    except SystemExit as exc:
        if len(sys.argv) > 1 and sys.argv[1] in QUICK_EXIT_COMMANDS:
            _quick_exit(exc.code)
        raise


def _quick_exit(code: object) -> None:
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
