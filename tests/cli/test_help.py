"""``crowdsky --version`` and the look of ``--help`` for every command."""

from __future__ import annotations

from pathlib import Path

import typer.main
from typer.testing import CliRunner

from crowdsky import __version__
from crowdsky.cli import app
from tests.support.cli_process import cli_env, run_cli


def _all_commands() -> list[list[str]]:
    found: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        found.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


def test_version(tmp_path: Path) -> None:
    done = run_cli("--version", env=cli_env(tmp_path), cwd=tmp_path)
    assert done.code == 0 and done.stdout == f"crowdsky {__version__}\n"


def test_help_shows_no_type_for_flags_and_no_braces_on_usage_lines() -> None:
    runner = CliRunner()
    commands = _all_commands()
    assert ["upload"] in commands and ["user", "api-key", "create"] in commands
    for path in commands:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output, path
        usage = next(line for line in result.output.splitlines() if "Usage:" in line)
        assert "{" not in usage, (path, usage)
    stack = runner.invoke(app, ["stack", "--help"], env={"COLUMNS": "120"}).output
    assert "Usage: crowdsky stack [OPTIONS] FILES..." in stack
    assert "<path>..." in stack and "list[Path]" not in stack
    upload = runner.invoke(app, ["upload", "--help"], env={"COLUMNS": "120"}).output
    assert "Usage: crowdsky upload [OPTIONS] FOLDER" in upload
    assert "--overwrite  " in upload and "<int range>" in upload


def test_the_cli_reference_covers_every_command_and_exit_code() -> None:
    from crowdsky.worker.main import EXIT_CODES

    reference = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    for path in _all_commands():
        if path:
            assert f"`{path[0]}" in reference or f"{path[0]} " in reference, path
    for code in EXIT_CODES:
        assert f"| {code} |" in reference, code
