"""``crowdsky doctor``: check a server's or a worker's configuration end to end.

Each check returns a :class:`Check`: ``ok``, ``info`` (an optional component is absent,
which is not a failure), or ``problem`` with the fix. Server checks: settings, the
database (exists, reachable, at the newest schema) and the raw-upload folder.
Worker checks, when ``API_BASE_URL`` is configured: settings, the server reachable,
the key accepted (a heartbeat for a job that cannot exist: no side effect), the
result store writable (a probe file published and removed) and the optional
plate solver and Siril. ``--server URL`` checks that a server answers there.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

Status = Literal["ok", "info", "problem"]
TIMEOUT = httpx.Timeout(10.0)
#: A job id the server cannot have (ids are below 2**31): a heartbeat for it only checks the key.
PROBE_JOB_ID = 2**31 - 1
ASTROMETRY_INDEX_DIRS = (Path("/usr/share/astrometry"), Path("/usr/local/astrometry/data"))


@dataclass(frozen=True)
class Check:
    """The result of one check."""

    name: str
    status: Status
    detail: str
    fix: str = ""


def server_checks(**overrides: object) -> Iterator[Check]:
    """Settings, database and storage of a server (``crowdsky server`` on this machine)."""
    from crowdsky.config import SettingsError, load_server_settings

    try:
        settings = load_server_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        yield Check("server settings", "problem", str(exc), "fix the variable named above")
        return
    yield Check("server settings", "ok", f"data folder {settings.data_dir}")
    yield _database_check(settings)
    yield _writable_check("raw-upload folder", settings.uploads_dir)
    if settings.worker_api_key is None:
        yield Check(
            "shared worker key",
            "info",
            "WORKER_API_KEY is unset: only per-worker tokens are accepted",
            "set WORKER_API_KEY, or give each worker `crowdsky worker-token create NAME`",
        )


def _database_check(settings: object) -> Check:
    from crowdsky.db import create_db_engine
    from crowdsky.db.migrate import SchemaNotCurrent, verify_schema

    url: str = settings.resolved_database_url  # type: ignore[attr-defined]
    shown = _safe(url)
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[-1])
        if not path.is_file():
            return Check(
                "database",
                "problem",
                f"no database at {path}",
                "run `crowdsky db upgrade` (or start `crowdsky server`, which creates it)",
            )
    engine = create_db_engine(url)
    try:
        verify_schema(engine)
    except SchemaNotCurrent as exc:
        text = str(exc)
        if url.startswith("sqlite") and "schema revision" in text:
            return Check("database", "info", text, "`crowdsky server` migrates SQLite on start")
        fix = "run `crowdsky db upgrade`"
        if "does not exist" in text.lower() or "unknown database" in text.lower():
            fix = "create the database (createdb / CREATE DATABASE), then `crowdsky db upgrade`"
        elif "cannot reach" in text:
            fix = "start the database server or correct CROWDSKY_DATABASE_URL"
        return Check("database", "problem", text, fix)
    finally:
        engine.dispose()
    return Check("database", "ok", f"{shown} is at the newest schema")


def _writable_check(name: str, folder: Path) -> Check:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".crowdsky-doctor-"):
            pass
    except OSError as exc:
        return Check(name, "problem", f"{folder} is not writable ({exc})", "fix its permissions")
    return Check(name, "ok", f"{folder} is writable")


def worker_checks(env_file: Path | None) -> Iterator[Check]:
    """Settings, server, key, result store and optional tools of a worker."""
    from crowdsky.worker.config import load_worker_settings
    from crowdsky.worker.errors import ConfigError

    try:
        settings = load_worker_settings(env_file)
    except ConfigError as exc:
        yield Check("worker settings", "problem", str(exc), "fix the variable named above")
        return
    yield Check("worker settings", "ok", f"worker {settings.worker_id}")
    yield from _worker_api_checks(settings.api_base_url, settings.worker_api_key.get_secret_value())
    yield _result_store_check(settings)
    yield from tool_checks()


def _worker_api_checks(api_base_url: str, key: str) -> Iterator[Check]:
    base = api_base_url.rstrip("/")
    try:
        response = httpx.post(
            f"{base}/heartbeat.php",
            json={"job_id": PROBE_JOB_ID, "worker_id": "crowdsky-doctor"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=TIMEOUT,
        )
    except httpx.HTTPError as exc:
        yield Check(
            "server",
            "problem",
            f"cannot reach {base}: {exc}",
            "start the server, or correct API_BASE_URL",
        )
        return
    if response.status_code in (401, 403):
        yield Check("server", "ok", f"{base} answers")
        yield Check(
            "worker key",
            "problem",
            "the server refused WORKER_API_KEY",
            "use the server's WORKER_API_KEY or a token from `crowdsky worker-token create NAME`",
        )
        return
    if response.status_code == 404 and "job" not in response.text.lower():
        fix = "correct API_BASE_URL"
        if not base.endswith("/api"):
            fix = f"API_BASE_URL must end in /api: set API_BASE_URL={base}/api"
        yield Check("server", "problem", f"no CrowdSky worker API at {base}", fix)
        return
    yield Check("server", "ok", f"{base} answers")
    yield Check("worker key", "ok", "accepted")


def _result_store_check(settings: object) -> Check:
    from crowdsky.worker.job_processor import build_result_store

    if getattr(settings, "store_kind", None) == "presigned":
        # nothing to probe here: the server signs each job's uploads (and checks them)
        return Check("result store", "ok", "presigned PUT to URLs the server signs per job")
    store = build_result_store(settings)  # type: ignore[arg-type]
    base = getattr(settings, "ucloud_base_path", "/crowdsky").rstrip("/")
    remote = f"{base}/.crowdsky-doctor-{secrets.token_hex(4)}.txt"
    try:
        with tempfile.TemporaryDirectory() as scratch:
            probe = Path(scratch) / "probe.txt"
            probe.write_text("crowdsky doctor\n")
            store.mkcol(base)
            store.upload_file(probe, remote)
            store.delete_files([remote])
    except Exception as exc:  # each store raises its own errors; all mean "not writable"
        return Check(
            "result store",
            "problem",
            f"{store.describe()}: cannot publish a file ({exc})",
            "check UCLOUD_WEBDAV_URL / UCLOUD_SHARE_TOKEN / UCLOUD_SHARE_PASSWORD, "
            "or LOCAL_RESULTS_DIR",
        )
    finally:
        store.close()
    return Check("result store", "ok", f"{store.describe()} is writable")


def tool_checks() -> Iterator[Check]:
    """Optional external programs: reported when absent, never a failure."""
    solver = shutil.which("solve-field")
    indexes = [p for d in ASTROMETRY_INDEX_DIRS if d.is_dir() for p in d.glob("index-*.fits")]
    if solver and indexes:
        yield Check("plate solver", "ok", f"{solver}, {len(indexes)} index files")
    elif solver:
        yield Check(
            "plate solver",
            "info",
            f"{solver} found but no index files in "
            + ", ".join(str(d) for d in ASTROMETRY_INDEX_DIRS),
            "install index files (Debian: astrometry-data-tycho2) to plate-solve stacks",
        )
    else:
        yield Check(
            "plate solver",
            "info",
            "solve-field (astrometry.net) not found: stacks are not plate-solved",
            "optional; Debian: apt install astrometry.net astrometry-data-tycho2",
        )
    siril = shutil.which("siril-cli")
    if siril:
        yield Check("siril", "ok", siril)
    else:
        yield Check("siril", "info", "siril-cli not found", "optional; Debian: apt install siril")


def server_url_checks(url: str) -> Iterator[Check]:
    """A user's view: does a CrowdSky server answer at ``url`` (``--server``)?"""
    from crowdsky.upload_client import server_url_problem

    problem = server_url_problem(url)
    if problem:
        yield Check("server URL", "problem", problem, "give the server's base URL")
        return
    base = url.strip().rstrip("/")
    try:
        response = httpx.get(f"{base}/healthz", timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        yield Check("server URL", "problem", f"cannot reach {base}: {exc}", "check --server")
        return
    if response.status_code != 200:
        yield Check(
            "server URL",
            "problem",
            f"{base}/healthz answered HTTP {response.status_code}",
            "is this a CrowdSky server? check --server (and the server's log)",
        )
        return
    yield Check("server URL", "ok", f"{base} answers and its database is ready")


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
