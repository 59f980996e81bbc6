"""The worker's command-line options, declared once for both of its entry points.

``python -m crowdsky.worker`` (argparse, :func:`add_to_parser`) and ``crowdsky
worker`` (Typer, built from :data:`WORKER_OPTIONS` in :mod:`crowdsky.cli.worker`)
read this table, so the two cannot drift apart. Each option's ``name`` is the
keyword of :func:`crowdsky.worker.main.run`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "WORKER_OPTIONS",
    "WorkerOption",
    "add_to_parser",
    "run_keywords",
]


@dataclass(frozen=True)
class WorkerOption:
    """One option: its flag, value type, default and help.

    Attributes
    ----------
    name : str
        Keyword of :func:`crowdsky.worker.main.run` (and argparse ``dest``).
    flag : str
        The flag, e.g. ``--worker-id``.
    kind : type
        ``str``, ``int``, ``float``, ``Path`` or ``bool``.
    default : object
        Value when the flag is absent; None means "keep the setting".
    help : str
        One line for ``--help``.
    off_flag : str, optional
        For a ``bool`` defaulting to None: the flag that sets it False.
    """

    name: str
    flag: str
    kind: type
    default: object
    help: str
    off_flag: str | None = None


WORKER_OPTIONS: tuple[WorkerOption, ...] = (
    WorkerOption("once", "--once", bool, False, "Process one job and exit (exit codes below)."),
    WorkerOption("env_file", "--env-file", Path, Path(".env"), "Dotenv file to read."),
    WorkerOption("worker_id", "--worker-id", str, None, "Overrides WORKER_ID."),
    WorkerOption(
        "max_workers", "--max-workers", int, None, "Overrides MAX_WORKERS (parallel jobs)."
    ),
    WorkerOption("work_dir", "--work-dir", Path, None, "Overrides WORK_DIR."),
    WorkerOption(
        "poll_interval", "--poll-interval", float, None, "Overrides POLL_INTERVAL (seconds)."
    ),
    WorkerOption(
        "shutdown_timeout",
        "--shutdown-timeout",
        float,
        None,
        "Overrides SHUTDOWN_TIMEOUT (seconds).",
    ),
    WorkerOption("log_level", "--log-level", str, None, "Overrides LOG_LEVEL."),
    WorkerOption(
        "json_logs",
        "--json-logs",
        bool,
        None,
        "Log format (default: JSON unless a TTY).",
        off_flag="--console-logs",
    ),
)


def add_to_parser(parser: argparse.ArgumentParser) -> None:
    """Add every option of :data:`WORKER_OPTIONS` to an argparse parser."""
    for option in WORKER_OPTIONS:
        if option.off_flag is not None:
            pair = parser.add_mutually_exclusive_group()
            pair.add_argument(
                option.flag, dest=option.name, action="store_const", const=True, help=option.help
            )
            pair.add_argument(
                option.off_flag,
                dest=option.name,
                action="store_const",
                const=False,
                help=f"the opposite of {option.flag}",
            )
        elif option.kind is bool:
            parser.add_argument(
                option.flag, dest=option.name, action="store_true", help=option.help
            )
        else:
            parser.add_argument(
                option.flag,
                dest=option.name,
                type=option.kind,
                default=option.default,
                help=option.help,
            )


def run_keywords(values: argparse.Namespace) -> dict[str, Any]:
    """The keywords of :func:`crowdsky.worker.main.run` from parsed arguments."""
    return {option.name: getattr(values, option.name) for option in WORKER_OPTIONS}
