"""Two server processes on one database share every login decision.

Wrong passwords spread over both servers, even sent all at once, get exactly the
configured number of checks before both answer 429 (the throttle's counters are in the
database). A password changed or an API key revoked through server A's web app is
refused by server B at once, although B had just verified (and cached) that login.
A web login made on A is a login on B (each has its own data dir; no
``CROWDSKY_WEB_SECRET``: the cookie key is the database's). Run on PostgreSQL and on
one SQLite file opened by both processes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from crowdsky.accounts import create_api_key, create_user
from crowdsky.db import create_db_engine, make_session_factory, upgrade_database
from crowdsky.db.types import utcnow
from tests.db_backends import create_server_database, drop_server_database
from tests.support.live_server import LiveServer, start_live_server

pytestmark = [pytest.mark.e2e]

ACCOUNT_LIMIT = 4
OLD_PASSWORD = "Andromeda-Galaxy-31"
NEW_PASSWORD = "Triangulum-Galaxy-33"
READ = "/api/my_jobs.php"  # any Basic-authenticated read


@pytest.fixture(params=["postgresql", "sqlite"])
def servers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[LiveServer, ...]]:
    admin = None
    if request.param == "postgresql":
        url, admin = create_server_database("postgresql")
        engine = create_db_engine(url)
        upgrade_database(url, engine=engine)
        engine.dispose()
    else:
        url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"  # the first server migrates it
    env = {
        "CROWDSKY_CLEANUP_INTERVAL_SECONDS": "0",
        "CROWDSKY_LOGIN_FAILURES_PER_ACCOUNT": str(ACCOUNT_LIMIT),
        "CROWDSKY_LOGIN_FAILURES_PER_ADDRESS": "1000",
    }
    started: list[LiveServer] = []
    try:
        for name in ("a", "b"):
            started.append(
                start_live_server(tmp_path / f"server-{name}", database_url=url, extra_env=env)
            )
        yield tuple(started)
    finally:
        for server in started:
            server.stop()
        if admin is not None:
            drop_server_database(url, admin)


def _seed(database_url: str) -> str:
    """User ``vega`` with a password and an API key (returned)."""
    engine = create_db_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            create_user(
                session, utcnow(), username="vega", email="vega@example.org", password=OLD_PASSWORD
            )
            return create_api_key(session, utcnow(), username="vega", name="scope").key
    finally:
        engine.dispose()


def _basic(server: LiveServer, login: str, password: str) -> int:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        return client.get(READ, auth=(login, password)).status_code


def _csrf(client: httpx.Client, path: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', client.get(path).text)
    assert match is not None, path
    return match.group(1)


def test_wrong_passwords_over_both_servers_share_one_limit(
    servers: tuple[LiveServer, ...],
) -> None:
    _seed(servers[0].database_url or "")
    # all at once, half on each server: the attempts are counted before any hash
    targets = [servers[n % 2] for n in range(10)]
    with ThreadPoolExecutor(len(targets)) as pool:
        answers = list(pool.map(lambda s: _basic(s, "vega", "wrong-password"), targets))
    assert sorted(answers) == [401] * ACCOUNT_LIMIT + [429] * (10 - ACCOUNT_LIMIT)
    # both servers now refuse the account before hashing, a right password too
    assert [_basic(s, "vega", "wrong-password") for s in servers] == [429, 429]
    assert [_basic(s, "VEGA@example.org", OLD_PASSWORD) for s in servers] == [429, 429]


def test_a_change_on_one_server_is_refused_by_the_other_at_once(
    servers: tuple[LiveServer, ...],
) -> None:
    server_a, server_b = servers
    key = _seed(server_a.database_url or "")
    bearer = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server_b.url, timeout=30) as b:
        assert b.get(READ, auth=("vega", OLD_PASSWORD)).status_code == 200  # B caches it
        assert b.get(READ, headers=bearer).status_code == 200

    with httpx.Client(base_url=server_a.url, timeout=30) as a:
        login = a.post(
            "/login",
            data={"csrf_token": _csrf(a, "/login"), "login": "vega", "password": OLD_PASSWORD},
        )
        assert login.status_code == 303, login.text[:500]
        revoked = a.post(
            "/account",
            data={"csrf_token": _csrf(a, "/account"), "action": "revoke_key", "name": "scope"},
        )
        assert revoked.status_code == 200 and "Key revoked" in revoked.text
        changed = a.post(
            "/account",
            data={
                "csrf_token": _csrf(a, "/account"),
                "action": "password",
                "current": OLD_PASSWORD,
                "password": NEW_PASSWORD,
                "password2": NEW_PASSWORD,
            },
        )
        assert changed.status_code == 303, changed.text[:500]
        assert changed.headers["location"] == "/account?changed=password"

    with httpx.Client(base_url=server_b.url, timeout=30) as b:
        assert b.get(READ, auth=("vega", OLD_PASSWORD)).status_code == 401
        assert b.get(READ, headers=bearer).status_code == 401
        assert b.get(READ, auth=("vega", NEW_PASSWORD)).status_code == 200


def test_a_web_login_on_one_server_is_a_login_on_the_other(
    servers: tuple[LiveServer, ...],
) -> None:
    server_a, server_b = servers
    _seed(server_a.database_url or "")
    with httpx.Client(base_url=server_a.url, timeout=30) as a:
        login = a.post(
            "/login",
            data={"csrf_token": _csrf(a, "/login"), "login": "vega", "password": OLD_PASSWORD},
        )
        assert login.status_code == 303, login.text[:500]
        cookies = dict(a.cookies)
    assert set(cookies) >= {"crowdsky_session"}
    # the browser follows a load balancer to B: same cookies, still logged in, CSRF valid
    with httpx.Client(base_url=server_b.url, timeout=30, cookies=cookies) as b:
        assert b.get("/web/api/stacks").status_code == 200
        page = b.get("/account")
        assert page.status_code == 200 and "vega" in page.text
        created = b.post(
            "/account",
            data={"csrf_token": _csrf(b, "/account"), "action": "create_key", "name": "b-key"},
        )
        assert created.status_code == 200 and "b-key" in created.text
    with httpx.Client(base_url=server_b.url, timeout=30) as anonymous:
        assert anonymous.get("/web/api/stacks").status_code == 401
