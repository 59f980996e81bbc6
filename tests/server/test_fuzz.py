"""Property-based fuzzing of every endpoint in the OpenAPI document: no input gives a 500.

schemathesis generates valid and invalid requests from ``/openapi.json``; each is sent
with valid credentials (worker key, or the user's Basic login) to an app on each
database backend (NUL in text, for one, fails only on PostgreSQL). The app always holds
claimed jobs. A generated value that is valid but could only ever be refused (a job or
file id, a worker id, a lease token) is aimed at a claimed job and its holder, so that
requests get past "no such job" and "held by another worker" to the lease check and
the writes; invalid values are sent as generated. The ``.php``-less aliases share their
handlers and are not fuzzed twice.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, reject, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from crowdsky import queue
from crowdsky.accounts import create_api_key, create_user, create_worker_token
from crowdsky.config import load_server_settings
from crowdsky.db.models import RawFile, StackingJob
from crowdsky.db.types import utcnow
from crowdsky.server import create_app
from crowdsky.server.schemas import fields
from crowdsky.server.state import ServerState
from crowdsky.testing import seed_jobs
from tests.db_backends import TestDatabase

pytestmark = pytest.mark.slow  # about 30 s per backend

WORKER_KEY = "f" * 64
PASSWORD = "correct horse battery"
USER_ENDPOINTS = ("/api/raw_upload", "/api/my_jobs", "/api/my_stacks")
#: Claimed jobs kept in place; completions, failures and releases use them up.
CLAIMED_JOBS = 4
HOLDER = "fuzz-worker"
MAX_ID = 2**31
MAX_WORKER_ID_CHARS = 64
#: Examples per operation and backend. Against the code before the audit's fixes, 150
#: found most of the 500s in each run; 60 missed most NUL-in-query-string cases.
EXAMPLES = 150


@dataclass
class Target:
    """The app under fuzzing and its state."""

    client: TestClient
    state: ServerState
    worker_token: str
    user_key: str


@pytest.fixture(scope="module")
def fuzz_target(
    _migrated_database: TestDatabase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    _migrated_database.reset()
    data = tmp_path_factory.mktemp("fuzz")
    app = create_app(
        load_server_settings(
            database_url=_migrated_database.url,
            data_dir=Path(data),
            worker_api_key=WORKER_KEY,
            cleanup_interval_seconds=0,
            retry_backoff_seconds=0,
        )
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        state = app.state.crowdsky
        with state.session_factory() as session:
            create_user(
                session,
                utcnow(),
                username="fuzzer",
                email="fuzz@example.invalid",
                password=PASSWORD,
            )
        with state.session_factory() as session:
            worker_token = create_worker_token(session, utcnow(), HOLDER).token
        with state.session_factory() as session:
            user_key = create_api_key(session, utcnow(), username="fuzzer", name="fuzz").key
        yield Target(client, state, worker_token, user_key)


@dataclass
class Held:
    """The claimed jobs (id -> lease token) and their raw files."""

    tokens: dict[int, str]
    file_ids: list[int]


def _held(state: ServerState) -> Held:
    """The jobs being processed and their files, claiming more when few are left."""
    if len(_processing(state)) < CLAIMED_JOBS:
        seed_jobs(state.session_factory, state.raw_store, n_jobs=CLAIMED_JOBS, files_per_job=1)
        for _ in range(CLAIMED_JOBS):
            with state.session_factory() as session:
                queue.claim_next_job(
                    session, utcnow(), worker_id=HOLDER, lease_seconds=3600, holder_token=HOLDER
                )
    tokens = _processing(state)
    with state.session_factory() as session, session.begin():
        files = session.execute(select(RawFile.id).where(RawFile.stacking_job_id.in_(tokens)))
        return Held(tokens, sorted(files.scalars()))


def _processing(state: ServerState) -> dict[int, str]:
    with state.session_factory() as session, session.begin():
        rows = session.execute(
            select(StackingJob.id, StackingJob.lease_token).where(
                StackingJob.status == queue.JobStatus.PROCESSING
            )
        )
        return {job_id: token or "" for job_id, token in rows}


def _is_valid_id(value: object) -> bool:
    return type(value) is int and 0 < value < MAX_ID


def _matches(value: object, pattern: str, max_chars: int) -> bool:
    return isinstance(value, str) and len(value) <= max_chars and bool(re.fullmatch(pattern, value))


def _aim(values: object, held: Held) -> None:
    """Point valid ids, worker ids and lease tokens at a claimed job and its holder."""
    if not isinstance(values, dict):
        return
    job_ids = sorted(held.tokens)
    job_id = values.get("job_id")
    if job_ids and _is_valid_id(job_id):
        job_id = values["job_id"] = job_ids[job_id % len(job_ids)]
        if _matches(values.get("worker_id"), fields.NAME_PATTERN, MAX_WORKER_ID_CHARS):
            values["worker_id"] = HOLDER
        if _matches(values.get("lease_token"), fields.TOKEN_PATTERN, fields.MAX_TOKEN_CHARS):
            values["lease_token"] = held.tokens[job_id]
    file_id = values.get("file_id")
    if held.file_ids and _is_valid_id(file_id):
        values["file_id"] = held.file_ids[file_id % len(held.file_ids)]


#: Checks of the answer against the document (not of how strictly requests are parsed:
#: pydantic's lax mode takes ``false`` for 0, which the negative-data checks count).
RESPONSE_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# The document only: building the app does no I/O (the database opens in the lifespan).
every_operation = schemathesis.openapi.from_dict(
    create_app(load_server_settings(data_dir=Path("unused"))).openapi()
).exclude(path_regex=r"^/api/\w+$")
#: cleanup takes no parameters and each call runs a whole cleanup pass (the slowest
#: operation by far): a few examples cover its credentials and query-string handling.
CLEANUP_PATH = r"^/api/cleanup\.php$"
CLEANUP_EXAMPLES = 15
schema = every_operation.exclude(path_regex=CLEANUP_PATH)
cleanup_schema = every_operation.include(path_regex=CLEANUP_PATH)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_server_fail(case, fuzz_target: Target) -> None:  # type: ignore[no-untyped-def]
    _send_and_check(case, fuzz_target)


@cleanup_schema.parametrize()
@settings(max_examples=CLEANUP_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_cleanup_fail(case, fuzz_target: Target) -> None:  # type: ignore[no-untyped-def]
    _send_and_check(case, fuzz_target)


def _send_and_check(case, fuzz_target: Target) -> None:  # type: ignore[no-untyped-def]
    """Aim the case at a claimed job, send it with credentials, check the answer."""
    held = _held(fuzz_target.state)
    for values in (case.body, case.query):
        _aim(values, held)
    if case.path.startswith(USER_ENDPOINTS):
        # the user's API key, and every third case the Basic login (remembered after one hash)
        if hash(repr(case.query)) % 3 == 0:
            token = base64.b64encode(f"fuzzer:{PASSWORD}".encode()).decode()
            headers = {"Authorization": f"Basic {token}"}
        else:
            headers = {"Authorization": f"Bearer {fuzz_target.user_key}"}
    else:
        # a per-worker token, bound to the jobs it claimed (the shared key has its own tests)
        headers = {"Authorization": f"Bearer {fuzz_target.worker_token}"}
    kwargs = case.as_transport_kwargs(headers=headers)
    kwargs.pop("base_url", None)
    if kwargs.pop("cookies", None):
        reject()  # cookie parameters are not part of our API
    if isinstance(kwargs.get("data"), bytes | str):
        kwargs["content"] = kwargs.pop("data")  # raw bodies go as content in httpx
    url = kwargs.pop("url")
    path = url.split("://", 1)[-1].split("/", 1)[-1]
    method = kwargs.pop("method")
    client = fuzz_target.client
    try:
        request = client.build_request(method, "/" + path, **kwargs)
        request.read()
    except (TypeError, AttributeError, ValueError):
        reject()  # not a request an HTTP client can encode (e.g. a number as a file part)
    response = client.send(request)
    assert response.status_code < 500, (
        f"{case.method} {case.path} -> {response.status_code}: {response.text[:500]}"
    )
    if response.status_code >= 400:
        assert "error" in response.json(), response.text[:500]
    # the answer matches the OpenAPI document: status code, content type, body schema
    case.validate_response(response, checks=RESPONSE_CHECKS)
