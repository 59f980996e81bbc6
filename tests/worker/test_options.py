"""The worker's one option table: ``crowdsky worker`` and ``python -m crowdsky.worker`` agree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from crowdsky.cli import app
from crowdsky.worker import main as worker_main
from crowdsky.worker import options

ARGV_CASES = [
    [],
    ["--once", "--console-logs"],
    ["--json-logs", "--worker-id", "w-7", "--max-workers", "3", "--work-dir", "/tmp/w"],
    ["--env-file", "x.env", "--poll-interval", "2.5", "--shutdown-timeout", "9"],
    ["--log-level", "debug"],
]


@pytest.mark.parametrize("argv", ARGV_CASES)
def test_both_entry_points_pass_run_the_same_keywords(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, Any]] = []

    def record(**keywords: Any) -> int:
        seen.append(keywords)
        return worker_main.EXIT_NO_JOB

    monkeypatch.setattr(worker_main, "run", record)
    assert worker_main.main(argv) == worker_main.EXIT_NO_JOB
    result = CliRunner().invoke(app, ["worker", *argv])
    assert result.exit_code == worker_main.EXIT_NO_JOB, result.output
    from_argparse, from_typer = seen
    assert from_argparse == from_typer
    assert set(from_typer) == {option.name for option in options.WORKER_OPTIONS}
    assert isinstance(from_typer["env_file"], Path)


def test_every_option_is_in_both_helps() -> None:
    typer_help = CliRunner().invoke(app, ["worker", "--help"], env={"COLUMNS": "200"}).output
    argparse_help = worker_main.build_parser().format_help()
    for option in options.WORKER_OPTIONS:
        for flag in filter(None, (option.flag, option.off_flag)):
            assert flag in typer_help and flag in argparse_help, flag


def test_the_log_format_flags_exclude_each_other() -> None:
    with pytest.raises(SystemExit):
        worker_main.build_parser().parse_args(["--json-logs", "--console-logs"])
