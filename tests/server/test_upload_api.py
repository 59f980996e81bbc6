"""Contract of the raw upload API on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from astropy.io import fits
from fastapi.testclient import TestClient
from sqlalchemy import select

from crowdsky import queue
from crowdsky.accounts import create_api_key, create_user, revoke_api_key, set_user_active
from crowdsky.config import load_server_settings
from crowdsky.db.models import RawFile
from crowdsky.db.types import utcnow
from crowdsky.server import create_app
from crowdsky.server.state import ServerState
from tests.db_backends import TestDatabase
from tests.ingest.fits_factory import write_frame, write_sequence

WORKER_KEY = "w" * 64
URL = "/api/raw_upload.php"
PASSWORD = "correct horse battery"


@dataclass
class Upload:
    client: TestClient
    state: ServerState
    tmp: Path
    auth: tuple[str, str] = ("alice", PASSWORD)

    def start(self, **kw: Any) -> str:
        r = self.client.post(URL, params={"action": "start"}, auth=kw.get("auth", self.auth))
        assert r.status_code == 200, r.text
        return str(r.json()["session_token"])

    def send(
        self,
        token: str,
        path: Path | None = None,
        *,
        name: str | None = None,
        content: bytes | None = None,
        **kw: Any,
    ) -> httpx.Response:
        body = content if content is not None else path.read_bytes()  # type: ignore[union-attr]
        filename = name if name is not None else path.name  # type: ignore[union-attr]
        return self.client.post(
            URL,
            params={"action": "file"},
            data={"session_token": token},
            files={"file": (filename, body, "application/fits")},
            auth=kw.get("auth", self.auth),
        )

    def send_raw_name(self, token: str, raw_name: bytes, content: bytes) -> httpx.Response:
        """A hand-built multipart body (httpx would percent-encode odd bytes in names)."""
        boundary = b"crowdskyboundary"
        body = (
            b"--"
            + boundary
            + b'\r\nContent-Disposition: form-data; name="session_token"\r\n\r\n'
            + token.encode()
            + b"\r\n--"
            + boundary
            + b'\r\nContent-Disposition: form-data; name="file"; filename="'
            + raw_name
            + b'"\r\nContent-Type: application/fits\r\n\r\n'
            + content
            + b"\r\n--"
            + boundary
            + b"--\r\n"
        )
        return self.client.post(
            URL,
            params={"action": "file"},
            content=body,
            auth=self.auth,
            headers={"Content-Type": "multipart/form-data; boundary=crowdskyboundary"},
        )

    def finalize(self, token: str, **fields: str) -> httpx.Response:
        return self.client.post(
            URL,
            params={"action": "finalize"},
            data={"session_token": token, **fields},
            auth=self.auth,
        )

    def status(self, token: str, auth: Any = None) -> httpx.Response:
        return self.client.get(
            URL, params={"action": "status", "session_token": token}, auth=auth or self.auth
        )

    def session_dir(self, token: str) -> Path:
        (folder,) = self.state.raw_store.root.glob(f"user_*/sess_{token}")
        return folder


def make_app(test_db: TestDatabase, tmp_path: Path, **settings: Any) -> Iterator[Upload]:
    config = load_server_settings(
        database_url=test_db.url,
        data_dir=tmp_path / "data",
        worker_api_key=WORKER_KEY,
        cleanup_interval_seconds=0,
        **settings,
    )
    app = create_app(config)
    with TestClient(app) as client:
        state: ServerState = app.state.crowdsky
        with state.session_factory() as session:
            create_user(
                session, utcnow(), username="alice", email="alice@example.org", password=PASSWORD
            )
            create_user(
                session, utcnow(), username="mallory", email="m@example.org", password=PASSWORD
            )
        yield Upload(client, state, tmp_path)


@pytest.fixture
def up(test_db: TestDatabase, tmp_path: Path) -> Iterator[Upload]:
    yield from make_app(test_db, tmp_path)


def files_outside_sessions(up: Upload) -> list[Path]:
    """Every file under the data dir that is not a published frame in a session folder."""
    root = up.state.raw_store.root
    odd = []
    for path in root.rglob("*"):
        if path.is_file():
            rel = path.relative_to(root).parts
            if len(rel) != 3 or not rel[1].startswith("sess_") or rel[2].startswith("."):
                odd.append(path)
    return odd


# -- happy path ---------------------------------------------------------------------------


def test_start_file_finalize_status(up: Upload) -> None:
    frames = write_sequence(up.tmp / "night", 5)
    token = up.start()
    assert len(token) == 32 and int(token, 16) >= 0
    for path in frames:
        r = up.send(token, path)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["ok"] is True and body["filename"] == path.name
        assert body["chunk_key"] == "20250327.05_HP033298"
        assert body["date_obs"].startswith("2025-03-27T01:2")
        assert body["duplicate"] is False
    status = up.status(token).json()
    assert status["status"] == "uploading" and status["file_count"] == 5
    assert {f["filename"] for f in status["files"]} == {p.name for p in frames}
    assert all(len(f["sha256"]) == 64 for f in status["files"])
    r = up.finalize(token)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and body["jobs"] == 1 and len(body["job_ids"]) == 1
    assert body["chunks"] == ["20250327.05_HP033298"] and body["skipped"] == []
    assert body["chunk_details"][0]["frames"] == 5
    with up.state.session_factory() as session:
        job = queue.get_job(session, body["job_ids"][0])
    assert (job.chunk_key, job.frame_count) == ("20250327.05_HP033298", 5)
    # idempotent finalize
    again = up.finalize(token).json()
    assert again["job_ids"] == body["job_ids"] and again["already_finalized"] is True
    assert up.status(token).json()["status"] == "complete"
    assert files_outside_sessions(up) == []


def test_clean_alias_and_post_status(up: Upload) -> None:
    r = up.client.post("/api/raw_upload?action=start", auth=up.auth)
    token = r.json()["session_token"]
    r = up.client.post("/api/raw_upload?action=status", data={"session_token": token}, auth=up.auth)
    assert r.status_code == 200 and r.json()["files"] == []


def test_classic_keys_stay_available(test_db: TestDatabase, tmp_path: Path) -> None:
    for up in make_app(test_db, tmp_path, chunk_key_format="classic"):
        token = up.start()
        for path in write_sequence(up.tmp / "n", 3):
            assert up.send(token, path).json()["chunk_key"] == "20250327.05_192.7_+41.1"
        assert up.finalize(token).json()["chunks"] == ["20250327.05_192.7_+41.1"]


# -- authentication -----------------------------------------------------------------------


def test_credentials(up: Upload) -> None:
    assert up.client.post(URL, params={"action": "start"}).status_code == 401
    bad = up.client.post(URL, params={"action": "start"}, auth=("alice", "wrong password"))
    assert bad.status_code == 401 and bad.json() == {"error": "Unauthorized."}
    assert (
        up.client.post(URL, params={"action": "start"}, auth=("nobody", PASSWORD)).status_code
        == 401
    )
    assert (
        up.client.post(
            URL, params={"action": "start"}, auth=("alice@example.org", PASSWORD)
        ).status_code
        == 200
    )
    with up.state.session_factory() as session:
        key = create_api_key(session, utcnow(), username="alice", name="laptop").key
        expired = create_api_key(
            session,
            utcnow() - timedelta(days=2),
            username="alice",
            name="old",
            expires_in=timedelta(days=1),
        ).key
    assert key.startswith("csk_")
    bearer = {"Authorization": f"Bearer {key}"}
    assert up.client.post(URL, params={"action": "start"}, headers=bearer).status_code == 200
    assert (
        up.client.post(
            URL, params={"action": "start"}, headers={"Authorization": f"Bearer {expired}"}
        ).status_code
        == 401
    )
    with up.state.session_factory() as session:
        revoke_api_key(session, utcnow(), username="alice", name="laptop")
    assert up.client.post(URL, params={"action": "start"}, headers=bearer).status_code == 401
    with up.state.session_factory() as session:
        set_user_active(session, utcnow(), "alice", False)
    assert up.client.post(URL, params={"action": "start"}, auth=up.auth).status_code == 401


def test_other_users_session_is_not_found(up: Upload) -> None:
    token = up.start()
    frame = write_frame(up.tmp / "a.fit")
    mallory = ("mallory", PASSWORD)
    r = up.send(token, frame, auth=mallory)
    assert r.status_code == 404 and "session not found" in r.json()["error"]
    assert up.status(token, auth=mallory).status_code == 404
    assert up.status("0" * 32).status_code == 404
    assert files_outside_sessions(up) == []
    assert list(up.session_dir(token).iterdir()) == []


# -- bad input ----------------------------------------------------------------------------


def test_bad_files_get_4xx_naming_file_and_session_stays_usable(up: Upload) -> None:
    good = write_frame(up.tmp / "good.fit")
    truncated = good.read_bytes()[:3000]
    no_image = up.tmp / "noimage.fit"
    fits.PrimaryHDU(header=fits.getheader(good)).writeto(no_image)
    cases: list[tuple[str, bytes, str]] = [
        ("notfits.fit", b"this is a JPEG, honest" * 200, "not a readable FITS file"),
        ("truncated.fit", truncated, "truncated"),
        ("noimage.fit", no_image.read_bytes(), "no image data"),
        (
            "nodate.fit",
            write_frame(up.tmp / "nodate.fit", date_obs=None).read_bytes(),
            "no DATE-OBS",
        ),
        (
            "old.fit",
            write_frame(up.tmp / "old.fit", date_obs="1980-01-01T00:00:00").read_bytes(),
            "implausible",
        ),
        ("ra.fit", write_frame(up.tmp / "ra.fit", ra="abc").read_bytes(), "RA is not a valid"),
        ("zero.fit", b"", "empty (0 bytes)"),
        ("../../escape.fit", good.read_bytes(), "'..'"),
        ("/etc/cron.d/x.fit", good.read_bytes(), "absolute path"),
        ("x" * 300 + ".fit", good.read_bytes(), "longer than 255"),
    ]
    token = up.start()
    for name, content, fragment in cases:
        r = up.send(token, name=name, content=content)
        assert r.status_code == 400, (name, r.text)
        message = r.json()["error"]
        assert fragment in message, (name, message)
        if not name.startswith(("x" * 10, "nul")):
            assert message.startswith(name[:20]), message
    for raw_name, fragment in [(b"nul\x00.fit", "NUL byte"), (b"tab\x07.fit", "control")]:
        r = up.send_raw_name(token, raw_name, good.read_bytes())
        assert r.status_code == 400 and fragment in r.json()["error"], r.text
    assert files_outside_sessions(up) == []
    assert list(up.session_dir(token).iterdir()) == []
    ok = up.send(token, good)
    assert ok.status_code == 200, ok.text
    assert [p.name for p in up.session_dir(token).iterdir()] == ["good.fit"]


def test_header_text_longer_than_its_column(up: Upload) -> None:
    """Grouping keywords are refused naming file, keyword and limit; names are cut."""
    token = up.start()
    for keyword, values in (
        ("FILTER", {"filter_name": "Baader UHC-S nebula filter, 2 inch, mounted by hand 01"}),
        ("TELESCOP", {"telescop": "T" * 66}),
    ):
        frame = write_frame(up.tmp / f"long_{keyword}.fit", **values)
        r = up.send(token, frame)
        assert r.status_code == 400, r.text
        message = r.json()["error"]
        assert message.startswith(f"long_{keyword}.fit: {keyword} "), message
        assert "characters long; CrowdSky stores at most" in message, message
    long_object = "M 94 " + "o" * 295
    frame = write_frame(up.tmp / "named.fit", object_name=long_object, instrume="I" * 66)
    r = up.send(token, frame)
    assert r.status_code == 200, r.text
    assert r.json()["object"] == long_object[:255]
    with up.state.session_factory() as session:
        raw = session.execute(select(RawFile)).scalar_one()
    assert (raw.fits_object, raw.fits_instrume) == (long_object[:255], "I" * 64)
    assert up.status(token).json()["file_count"] == 1


def test_size_limit(test_db: TestDatabase, tmp_path: Path) -> None:
    for up in make_app(test_db, tmp_path, max_upload_bytes=20_000):
        token = up.start()
        big = write_frame(up.tmp / "big.fit", shape=(100, 200))
        r = up.send(token, big)
        assert r.status_code == 413
        assert r.json()["error"].startswith("big.fit: file is larger than the 0.02 MB limit")
        assert list(up.session_dir(token).iterdir()) == []
        assert up.send(token, write_frame(up.tmp / "small.fit")).status_code == 200


def test_malformed_requests(up: Upload) -> None:
    token = up.start()
    r = up.client.post(URL, params={"action": "file"}, data={"session_token": token}, auth=up.auth)
    assert r.status_code == 400 and "multipart" in r.json()["error"]
    r = up.client.post(
        URL,
        params={"action": "file"},
        files={"file": ("a.fit", b"x", "application/fits")},
        auth=up.auth,
    )
    assert r.status_code == 400 and "session_token is required" in r.json()["error"]
    r = up.client.post(URL, params={"action": "explode"}, auth=up.auth)
    assert r.status_code == 400
    r = up.client.post(URL, params={"action": "finalize"}, auth=up.auth)
    assert r.status_code == 400 and "session_token" in r.json()["error"]
    r = up.finalize(token, overwrite="maybe")
    assert r.status_code == 400 and "overwrite must be 0 or 1" in r.json()["error"]


FRAME_PART = {"file": ("a.fit", b"SIMPLE  =                    T", "application/fits")}
# (method, url, request arguments, status): text no session token, object name or login
# can hold (PostgreSQL answered NUL with a 500), refused before the database is asked.
HOSTILE_REQUESTS: list[tuple[str, str, dict[str, Any], int]] = [
    ("GET", URL + "?action=status&session_token=a%00b", {}, 400),
    ("GET", URL + "?action=status&session_token=%C3%A9", {}, 400),
    ("POST", URL + "?action=status&session_token=a%00b", {}, 400),
    ("POST", URL + "?action=status", {"data": {"session_token": "a\x00b"}}, 400),
    ("POST", URL + "?action=finalize", {"data": {"session_token": "a\x00b"}}, 400),
    ("POST", URL + "?action=finalize", {"data": {"session_token": "t" * 65}}, 400),
    ("POST", URL + "?action=finalize&session_token=a%00b", {}, 400),
    ("POST", URL + "?action=file", {"data": {"session_token": "a\x00b"}, "files": FRAME_PART}, 400),
    ("POST", URL + "?action=file&session_token=a%00b", {"files": FRAME_PART}, 400),
    ("GET", "/api/my_jobs.php?session_token=a%00b", {}, 400),
    ("GET", "/api/my_jobs.php?limit=1e3", {}, 400),
    ("GET", "/api/my_stacks.php?object=M%0094", {}, 400),
    ("GET", "/api/my_stacks.php?object=" + "m" * 256, {}, 400),
    ("POST", URL + "?action=start", {"auth": ("alice\x00", PASSWORD)}, 401),
    ("POST", URL + "?action=start", {"auth": ("a" * 300, PASSWORD)}, 401),
    ("POST", URL + "?action=start", {"headers": {"Authorization": b"Basic \xff\xfe"}}, 401),
    ("POST", URL + "?action=start", {"headers": {"Authorization": b"Bearer csk_\xff"}}, 401),
]


@pytest.mark.parametrize(("method", "url", "kwargs", "status"), HOSTILE_REQUESTS)
def test_hostile_tokens_and_logins_get_a_clear_4xx_and_change_nothing(
    up: Upload, method: str, url: str, kwargs: dict[str, Any], status: int
) -> None:
    token = up.start()
    if "headers" not in kwargs:
        kwargs = {"auth": up.auth, **kwargs}
    response = up.client.request(method, url, **kwargs)
    assert response.status_code == status, response.text
    message = response.json()["error"]
    if status == 400:
        assert any(name in message for name in ("session_token", "object", "limit")), message
    after = up.status(token).json()
    assert (after["status"], after["file_count"]) == ("uploading", 0)
    assert files_outside_sessions(up) == []


def test_finalized_and_empty_sessions(up: Upload) -> None:
    token = up.start()
    r = up.finalize(token)
    assert r.status_code == 409 and "no files" in r.json()["error"]
    for path in write_sequence(up.tmp / "n", 3):
        up.send(token, path)
    assert up.finalize(token).status_code == 200
    r = up.send(token, write_frame(up.tmp / "late.fit", seed=99))
    assert r.status_code == 409 and "already finalized" in r.json()["error"]


def test_expired_session(test_db: TestDatabase, tmp_path: Path) -> None:
    for up in make_app(test_db, tmp_path, upload_expiry_hours=0.5 / 3600):
        token = up.start()
        time.sleep(0.7)
        r = up.send(token, write_frame(up.tmp / "a.fit"))
        assert r.status_code == 409 and "expired" in r.json()["error"]
        assert up.finalize(token).status_code == 409
        assert up.status(token).json()["status"] == "expired"


# -- duplicates, skipping, overwrite, scrubbing --------------------------------------------


def test_duplicates_are_stored_once(up: Upload) -> None:
    frame = write_frame(up.tmp / "a.fit")
    token = up.start()
    first = up.send(token, frame).json()
    again = up.send(token, frame, name="renamed.fit").json()
    assert again["duplicate"] is True and again["file_id"] == first["file_id"]
    assert "same content" in again["note"]
    assert len(list(up.session_dir(token).iterdir())) == 1
    assert up.status(token).json()["file_count"] == 1
    # same name, different content: both kept under distinct names
    other = write_frame(up.tmp / "b" / "a.fit", seed=5)
    assert up.send(token, other).json()["stored_as"] == "a-2.fit"
    # another session of the same user keeps its own copy: the first one may never be
    # finalized, and its files go when it expires (tests/ingest/test_sessions.py)
    token2 = up.start()
    cross = up.send(token2, frame).json()
    assert cross["duplicate"] is False and cross["file_id"] != first["file_id"]
    assert [p.name for p in up.session_dir(token2).iterdir()] == ["a.fit"]


def test_small_groups_are_skipped_with_reason(up: Upload) -> None:
    token = up.start()
    for path in write_sequence(up.tmp / "m94", 4):
        up.send(token, path)
    for path in write_sequence(up.tmp / "m51", 2, ra=202.47, dec=47.2, seed=7, prefix="M51"):
        up.send(token, path)
    body = up.finalize(token).json()
    assert body["jobs"] == 1
    (skipped,) = body["skipped"]
    assert skipped["chunk_key"] == "20250327.05_HP026020"
    assert skipped["frames"] == 2 and "at least 3" in skipped["reason"]
    assert sorted(skipped["filenames"]) == ["M51_000.fit", "M51_001.fit"]
    assert body["discarded_files"] == 2, "a skipped chunk's files are deleted"
    stored = {f["filename"]: f["stored"] for f in up.status(token).json()["files"]}
    assert [name for name, kept in sorted(stored.items()) if not kept] == [
        "M51_000.fit",
        "M51_001.fit",
    ]


def _complete(up: Upload, job_id: int) -> None:
    with up.state.session_factory() as session:
        claimed = queue.claim_next_job(session, utcnow(), worker_id="w", lease_seconds=60)
        assert claimed is not None and claimed.job_id == job_id
        queue.complete_job(
            session,
            utcnow(),
            queue.Completion(job_id=job_id, ucloud_path="stacks/x.fits"),
            raw_store=up.state.raw_store,
            worker_id="w",
            lease_token=claimed.lease_token,
        )


def test_already_stacked_chunk_is_skipped_unless_overwrite(up: Upload) -> None:
    frames = write_sequence(up.tmp / "n", 3)
    token = up.start()
    for path in frames:
        up.send(token, path)
    (job_id,) = up.finalize(token).json()["job_ids"]
    _complete(up, job_id)
    token2 = up.start()
    for path in frames:  # raws of the completed job were deleted: they may come again
        assert up.send(token2, path).json()["duplicate"] is False
    body = up.finalize(token2).json()
    assert body["jobs"] == 0
    assert "already stacked" in body["skipped"][0]["reason"]
    token3 = up.start()
    for path in frames:
        up.send(token3, path)
    r = up.finalize(token3, overwrite="1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["jobs"] == 1 and body["skipped"] == []


def test_scrub_location(up: Upload) -> None:
    token = up.start()
    frames = write_sequence(up.tmp / "n", 3)
    strays = write_sequence(up.tmp / "m51", 2, ra=202.47, dec=47.2, seed=7, prefix="M51")
    for path in frames + strays:
        up.send(token, path)
    body = up.finalize(token, scrub_location="1").json()
    # the job's frames are rewritten; the skipped pair is deleted, not rewritten first
    assert body["scrubbed_files"] == 3 and body["discarded_files"] == 2
    session_dir = up.session_dir(token)
    for stored in session_dir.iterdir():
        header = fits.getheader(stored)
        assert "SITELAT" not in header and "SITELONG" not in header
        assert header["DATE-OBS"].startswith("2025-03-27")
        assert fits.getdata(stored).shape == (8, 12)
    with up.state.session_factory() as session, session.begin():
        sites = session.execute(select(RawFile.fits_sitelat, RawFile.fits_sitelong)).all()
    assert sites and all(row == (None, None) for row in sites)


def test_openapi_lists_upload_endpoints(up: Upload) -> None:
    paths = up.client.get("/openapi.json").json()["paths"]
    for path in ("/api/raw_upload.php", "/api/raw_upload"):
        assert {"get", "post"} <= set(paths[path])
        assert "multipart/form-data" in paths[path]["post"]["requestBody"]["content"]


# -- the real frames ------------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize(
    ("key_format", "expected"),
    [("classic", "20250327.05_193.1_+41.0"), ("healpix", "20250327.05_HP033810")],
)
def test_real_frames_make_one_job(
    sqlite_db: TestDatabase,
    tmp_path: Path,
    real_frames: list[Path],
    key_format: str,
    expected: str,
) -> None:
    from crowdsky.ingest.chunking import chunk_key, mean_pointing

    headers = [fits.getheader(p) for p in real_frames]
    ra, dec = mean_pointing([h["RA"] for h in headers], [h["DEC"] for h in headers])
    from crowdsky.ingest.fits_headers import parse_date_obs

    first = min(parse_date_obs(h["DATE-OBS"], "x") for h in headers)
    assert chunk_key(first, ra, dec, key_format) == expected  # type: ignore[arg-type]
    for up in make_app(sqlite_db, tmp_path, chunk_key_format=key_format):
        token = up.start()
        for path in real_frames:
            assert up.send(token, path).status_code == 200
        body = up.finalize(token).json()
        assert body["jobs"] == 1 and body["chunks"] == [expected]
        assert body["chunk_details"][0]["frames"] == 32
