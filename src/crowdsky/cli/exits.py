"""How a command stops on an error: a red message on stderr and a non-zero exit.

Every command raises the :class:`typer.Exit` that :func:`fail` returns, so errors
look the same everywhere and the exit code is the caller's choice (2 by default).
"""

from __future__ import annotations

import typer
from rich.console import Console

err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error to stderr and return the exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True, highlight=False)
    return typer.Exit(code)
