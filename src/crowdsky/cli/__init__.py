"""The `crowdsky` command line: one Typer app, one module per command family.

Each module in this package defines a ``register(app)`` function that adds its
commands; this module only assembles them. Commands hold no domain logic: they
parse options, build settings and call into the core packages.
"""

from __future__ import annotations

import typer

from crowdsky.cli import admin, demo, server, stack, upload, users, worker

app = typer.Typer(
    name="crowdsky",
    help="CrowdSky: crowd-sourced stacking for smart-telescope astronomers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in (server, admin, stack, worker, demo, users, upload):
    _module.register(app)


def main() -> None:
    """Entry point of the `crowdsky` console script."""
    app()
