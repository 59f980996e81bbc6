"""Accounts on the command line: ``crowdsky user create`` and ``crowdsky user api-key ...``.

Driven through typer's CliRunner against a real database: keys are shown once and
stored only as hashes, revocation works at once, listings never show a secret, and
every refusal names the problem and exits non-zero.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update
from typer.testing import CliRunner, Result

from crowdsky.accounts import authenticate_api_key, authenticate_password
from crowdsky.cli import app
from crowdsky.db import create_db_engine, make_session_factory
from crowdsky.db.models import ApiKey, User
from crowdsky.db.types import utcnow
from tests.db_backends import TestDatabase

runner = CliRunner()
PASSWORD = "correct horse battery"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    monkeypatch.setenv("CROWDSKY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CROWDSKY_DATABASE_URL", raising=False)
    created = runner.invoke(app, ["db", "upgrade"])  # admin commands never create it
    assert created.exit_code == 0, created.output
    monkeypatch.delenv("CROWDSKY_PASSWORD", raising=False)
    return tmp_path


@pytest.fixture
def engine(env: Path) -> Iterator[Engine]:
    """The SQLite database the commands use (created by ``crowdsky db upgrade``)."""
    engine = create_db_engine(f"sqlite:///{env / 'data' / 'crowdsky.sqlite3'}")
    yield engine
    engine.dispose()


def crowdsky(*args: str, stdin: str | None = None) -> Result:
    return runner.invoke(app, list(args), input=stdin)


def create_bob() -> None:
    result = crowdsky("user", "create", "bob", "--email", "bob@example.org", "--password", PASSWORD)
    assert result.exit_code == 0, result.output


def refused(result: Result, message: str) -> None:
    """A clear refusal: non-zero exit, the reason in the output, no traceback."""
    assert result.exit_code != 0, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output


# -- user create ----------------------------------------------------------------------------


def test_user_create_stores_an_argon2_hash(env: Path, engine: Engine) -> None:
    result = crowdsky("user", "create", "bob", "--email", "Bob@Example.org", "--password", PASSWORD)
    assert result.exit_code == 0, result.output
    assert "created user 'bob'" in result.stdout
    with engine.connect() as connection:
        row = connection.execute(select(User.email, User.password_hash, User.is_active)).one()
    assert row.email == "bob@example.org" and row.is_active
    assert row.password_hash.startswith("$argon2id$") and PASSWORD not in row.password_hash
    with make_session_factory(engine)() as session:
        assert authenticate_password(session, "bob", PASSWORD) is not None
    listed = crowdsky("user", "list")
    assert "bob\tbob@example.org\tactive" in listed.stdout


def test_user_create_password_from_environment_or_prompt(
    env: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROWDSKY_PASSWORD", PASSWORD)
    assert crowdsky("user", "create", "bob", "--email", "bob@example.org").exit_code == 0
    monkeypatch.delenv("CROWDSKY_PASSWORD")
    prompted = crowdsky(
        "user", "create", "eve", "--email", "eve@example.org", stdin=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert prompted.exit_code == 0, prompted.output
    assert PASSWORD not in prompted.output, "the prompt does not echo the password"
    with make_session_factory(engine)() as session:
        assert authenticate_password(session, "bob", PASSWORD) is not None
        assert authenticate_password(session, "eve@example.org", PASSWORD) is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bob", "--email", "other@example.org"], "username already registered"),
        (["robert", "--email", "BOB@example.org"], "email already registered"),
        (["carol", "--email", "not-an-email"], "invalid email address 'not-an-email'"),
        (["carol", "--email", "carol@nowhere"], "invalid email address"),
        (["x", "--email", "x@example.org"], "invalid username 'x'"),
        (["../etc", "--email", "e@example.org"], "invalid username"),
        (["carol", "--email", "carol@example.org", "--password", "short"], "password too short"),
    ],
)
def test_user_create_refuses_bad_input(env: Path, args: list[str], message: str) -> None:
    create_bob()
    if "--password" not in args:
        args = [*args, "--password", PASSWORD]
    refused(crowdsky("user", "create", *args), message)
    assert crowdsky("user", "list").stdout.count("\n") == 1, "nothing else was created"


def test_user_create_needs_an_email(env: Path) -> None:
    refused(crowdsky("user", "create", "bob", "--password", PASSWORD), "--email")


def test_duplicate_user_on_each_backend(
    test_db: TestDatabase, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROWDSKY_DATABASE_URL", test_db.url)
    create_bob()
    again = crowdsky("user", "create", "bob", "--email", "b2@example.org", "--password", PASSWORD)
    refused(again, "username already registered")
    assert again.exit_code == 2


# -- api-key create / list / revoke ---------------------------------------------------------


def test_api_key_is_shown_once_and_stored_hashed(env: Path, engine: Engine) -> None:
    create_bob()
    created = crowdsky("user", "api-key", "create", "bob", "laptop")
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert key.startswith("csk_") and len(key) > 40 and "\n" not in key
    assert "shown once" in created.stderr and key not in created.stderr
    with engine.connect() as connection:
        stored = connection.execute(select(ApiKey)).one()
    assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in [str(value) for value in stored]
    assert key.startswith(stored.key_prefix) and len(stored.key_prefix) < 20
    with make_session_factory(engine)() as session:
        owner = authenticate_api_key(session, utcnow(), key)
    assert owner is not None and owner.username == "bob"
    # the listing names the key and its prefix, never the secret
    listed = crowdsky("user", "api-key", "list", "bob")
    assert listed.exit_code == 0
    assert listed.stdout == f"laptop\t{stored.key_prefix}…\tactive\n"
    assert key not in listed.output


def test_api_key_with_expiry(env: Path, engine: Engine) -> None:
    create_bob()
    created = crowdsky("user", "api-key", "create", "bob", "ci", "--expires-days", "30")
    assert created.exit_code == 0, created.output
    assert ", expires " in created.stderr
    listed = crowdsky("user", "api-key", "list", "bob").stdout
    assert listed.startswith("ci\tcsk_") and "\texpires " in listed


def test_revoked_key_stops_working(env: Path, engine: Engine) -> None:
    create_bob()
    key = crowdsky("user", "api-key", "create", "bob", "laptop").stdout.strip()
    assert crowdsky("user", "api-key", "create", "bob", "phone").exit_code == 0
    revoked = crowdsky("user", "api-key", "revoke", "bob", "laptop")
    assert revoked.exit_code == 0 and "revoked key 'laptop' of 'bob'" in revoked.stdout
    with make_session_factory(engine)() as session:
        assert authenticate_api_key(session, utcnow(), key) is None
    lines = crowdsky("user", "api-key", "list", "bob").stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["laptop", "phone"]
    assert "\trevoked " in lines[0] and lines[1].endswith("\tactive")
    refused(crowdsky("user", "api-key", "revoke", "bob", "laptop"), "no active key 'laptop'")
    # the name is free again; the new key works, the old one still does not
    new_key = crowdsky("user", "api-key", "create", "bob", "laptop").stdout.strip()
    with make_session_factory(engine)() as session:
        assert authenticate_api_key(session, utcnow(), new_key) is not None
        assert authenticate_api_key(session, utcnow(), key) is None


def test_expired_key(env: Path, engine: Engine) -> None:
    create_bob()
    key = crowdsky("user", "api-key", "create", "bob", "old", "--expires-days", "1").stdout.strip()
    with engine.begin() as connection:  # a day has passed
        connection.execute(update(ApiKey).values(expires_at=utcnow() - timedelta(minutes=1)))
    with make_session_factory(engine)() as session:
        assert authenticate_api_key(session, utcnow(), key) is None
    listed = crowdsky("user", "api-key", "list", "bob").stdout
    assert listed.startswith("old\tcsk_") and "\texpired " in listed
    refused(crowdsky("user", "api-key", "revoke", "bob", "old"), "already expired")
    # an expired name may be reused
    assert crowdsky("user", "api-key", "create", "bob", "old").exit_code == 0


@pytest.mark.parametrize("days", ["0", "-1", "soon"])
def test_api_key_expiry_must_be_in_the_future(env: Path, days: str) -> None:
    create_bob()
    result = crowdsky("user", "api-key", "create", "bob", "k", "--expires-days", days)
    refused(result, "--expires-days")
    assert crowdsky("user", "api-key", "list", "bob").stdout == ""


def test_api_key_refusals(env: Path) -> None:
    create_bob()
    assert crowdsky("user", "api-key", "create", "bob", "laptop").exit_code == 0
    refused(
        crowdsky("user", "api-key", "create", "bob", "laptop"),
        "user 'bob' already has an active key 'laptop'",
    )
    refused(crowdsky("user", "api-key", "create", "bob", "bad/name"), "invalid key name")
    refused(crowdsky("user", "api-key", "create", "ghost", "laptop"), "no user 'ghost'")
    refused(crowdsky("user", "api-key", "revoke", "ghost", "laptop"), "no user 'ghost'")
    refused(crowdsky("user", "api-key", "revoke", "bob", "nothing"), "no active key 'nothing'")
    refused(crowdsky("user", "api-key", "list", "ghost"), "no user 'ghost'")
