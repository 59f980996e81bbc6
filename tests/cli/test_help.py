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


def test_each_command_is_registered_alone_by_its_module() -> None:
    """The console script builds the app of the one module its command needs."""
    from crowdsky.cli import COMMAND_MODULES, MODULES, build_app

    full = typer.main.get_command(app)
    assert set(COMMAND_MODULES) == set(getattr(full, "commands", {}))
    assert set(COMMAND_MODULES.values()) == set(MODULES)
    runner = CliRunner()
    for command, module in COMMAND_MODULES.items():
        alone = build_app((module,))
        names = set(getattr(typer.main.get_command(alone), "commands", {}))
        assert command in names and names <= set(COMMAND_MODULES), (command, names)
        assert {COMMAND_MODULES[n] for n in names} == {module}
        ours = runner.invoke(alone, [command, "--help"], env={"COLUMNS": "120"}).output
        theirs = runner.invoke(app, [command, "--help"], env={"COLUMNS": "120"}).output
        assert ours == theirs, command


def test_crowdsky_stack_imports_neither_the_worker_nor_astropy(tmp_path: Path) -> None:
    """Only the stack command's own modules: nothing of the worker, the server, the
    HTTP or database clients, nor astropy (the stack is written without it)."""
    import subprocess
    import sys

    probe = (
        "import os, sys\n"
        "real_exit = os._exit\n"
        "def report(code=0):\n"
        "    loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('httpx', 'astropy', 'sqlalchemy') "
        "or m.startswith(('crowdsky.worker', 'crowdsky.server', 'crowdsky.db')))\n"
        "    sys.stderr.write('LOADED=' + ','.join(loaded) + '\\n')\n"
        "    sys.stderr.flush()\n"
        "    real_exit(code)\n"
        "os._exit = report\n"
        "sys.argv = ['crowdsky', 'stack', 'missing.fit', '-o', 'out.fits']\n"
        "from crowdsky.cli import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=cli_env(tmp_path),
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "not found" in done.stderr, done.stderr
    assert "LOADED=\n" in done.stderr, done.stderr
