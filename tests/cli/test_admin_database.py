"""Administration commands and the database they act on.

``--data-dir`` and ``--database-url`` choose it; a database that does not exist is
never created by ``crowdsky user ...``, ``worker-token ...`` or ``cleanup``: they say
so and what to run (``crowdsky db upgrade``). Run as processes, as a user runs them.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.db_backends import create_server_database, drop_server_database
from tests.support.cli_process import cli_env, run_cli

ADMIN_COMMANDS = [
    ["user", "list"],
    ["user", "create", "eve", "--email", "eve@example.org", "--password", "a long password"],
    ["user", "api-key", "list", "eve"],
    ["worker-token", "list"],
    ["cleanup"],
]


@pytest.mark.parametrize("command", ADMIN_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_an_admin_command_in_a_fresh_folder_creates_nothing_and_says_what_to_run(
    tmp_path: Path, command: list[str]
) -> None:
    done = run_cli(*command, env=cli_env(tmp_path), cwd=tmp_path)
    assert done.code == 2, done.output
    assert "no CrowdSky database at" in done.stderr
    assert "crowdsky db upgrade --data-dir crowdsky-data" in done.stderr
    assert "Traceback" not in done.output
    assert not (tmp_path / "crowdsky-data").exists(), "nothing was created"


def test_data_dir_option_chooses_the_database(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    data = tmp_path / "srv"
    missing = run_cli("user", "list", "--data-dir", str(data), env=env, cwd=tmp_path)
    assert missing.code == 2 and f"crowdsky db upgrade --data-dir {data}" in missing.stderr
    assert run_cli("db", "upgrade", "--data-dir", str(data), env=env, cwd=tmp_path).code == 0
    assert (data / "crowdsky.sqlite3").is_file()
    created = run_cli(
        "user", "create", "eve", "--email", "eve@example.org", "--password", "a long password",
        "--data-dir", str(data), env=env, cwd=tmp_path,
    )  # fmt: skip
    assert created.code == 0, created.output
    listed = run_cli("user", "list", "--data-dir", str(data), env=env, cwd=tmp_path)
    assert "eve\teve@example.org\tactive" in listed.stdout
    url = f"sqlite:///{data / 'crowdsky.sqlite3'}"
    by_url = run_cli("user", "list", "--database-url", url, env=env, cwd=tmp_path)
    assert "eve\t" in by_url.stdout, by_url.output
    assert not (tmp_path / "crowdsky-data").exists()


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_a_server_database_that_is_missing_or_empty_is_explained(
    tmp_path: Path, backend: str
) -> None:
    url, admin = create_server_database(backend)
    try:
        env = cli_env(tmp_path)
        empty = run_cli("user", "list", "--database-url", url, env=env, cwd=tmp_path)
        assert empty.code == 2, empty.output
        assert "schema revision none" in empty.stderr
        assert "run `crowdsky db upgrade --database-url" in empty.stderr
        absent = make_url(url).set(database=f"crowdsky_absent_{secrets.token_hex(4)}")
        absent_url = absent.render_as_string(hide_password=False)
        gone = run_cli("worker-token", "list", "--database-url", absent_url, env=env, cwd=tmp_path)
        assert gone.code == 2, gone.output
        assert "The database does not exist yet" in gone.stderr
        assert "crowdsky db upgrade --database-url" in gone.stderr
        upgraded = run_cli("db", "upgrade", "--database-url", url, env=env, cwd=tmp_path)
        assert upgraded.code == 0, upgraded.output
        listed = run_cli("user", "list", "--database-url", url, env=env, cwd=tmp_path)
        assert listed.code == 0 and listed.stdout == "", listed.output
    finally:
        drop_server_database(url, admin)
