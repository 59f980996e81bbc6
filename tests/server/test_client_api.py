"""Contract of the app/bot reads and the data API (``clients.md``) on every backend.

Stacks are made through the real queue: a job is enqueued, claimed and completed
with result files written into the server's local result store, exactly as a worker
with ``RESULT_STORE=local`` does.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy import units as u
from astropy.io import ascii as astropy_ascii
from astropy.io import fits
from astropy_healpix import HEALPix
from fastapi.testclient import TestClient
from sqlalchemy import select

from crowdsky import queue, retention
from crowdsky.accounts import create_api_key, create_user
from crowdsky.config import load_server_settings
from crowdsky.db.models import RawFile, UploadSession
from crowdsky.db.types import utcnow
from crowdsky.server import create_app
from crowdsky.server.schemas.user_api import StackItem
from crowdsky.server.state import ServerState
from crowdsky.storage.result_store import LocalResultStore
from tests.db_backends import TestDatabase

PASSWORD = "correct horse battery"
SERVICE_KEY = "s" * 48
WORKER_KEY = "w" * 64
T0 = datetime(2026, 3, 1, 21, 0, tzinfo=UTC)


@dataclass
class Env:
    client: TestClient
    state: ServerState
    alice_key: str

    @property
    def results(self) -> LocalResultStore:
        return LocalResultStore(self.state.settings.resolved_results_dir)

    def user_id(self, name: str) -> int:
        from crowdsky.db.models import User

        with self.state.session_factory() as session:
            return session.execute(select(User.id).where(User.username == name)).scalar_one()

    def make_stack(
        self,
        username: str = "alice",
        *,
        ra: float = 148.97,
        dec: float = 69.68,
        when: datetime = T0,
        filter_name: str = "LP",
        telescope: str = "Seestar S50 1",
        exptime: float = 10.0,
        frames: int = 3,
        eq_mode: int | None = 0,
        stars: bool = True,
        thumbnail: bool = True,
    ) -> int:
        """A completed stack of ``frames`` frames; returns its id."""
        user_id = self.user_id(username)
        now = utcnow()
        with self.state.session_factory() as session, session.begin():
            upload = UploadSession(
                user_id=user_id,
                session_token=f"t{now.timestamp():.6f}{ra}{when.timestamp()}"[:64],
                status="complete",
                storage_path=f"user_{user_id}/sess_x",
                created_at=now,
                last_activity_at=now,
                completed_at=now,
            )
            session.add(upload)
            session.flush()
            ids = []
            for i in range(frames):
                raw = RawFile(
                    upload_session_id=upload.id,
                    filename=f"f{i}.fit",
                    storage_path=f"user_{user_id}/sess_x/f{i}.fit",
                    file_size_bytes=2880,
                    sha256=f"{upload.id:032d}{i:032d}",
                    fits_date_obs=when + timedelta(seconds=10 * i),
                    fits_eqmode=eq_mode,
                    fits_sitelat=48.2,
                    fits_sitelong=16.4,
                )
                session.add(raw)
                session.flush()
                ids.append(raw.id)
            upload_id = upload.id
        key = f"{when:%Y%m%d}.{(when.hour * 4 + when.minute // 15):02d}_X"
        (job_id,) = queue.enqueue_jobs(
            self.state.session_factory(),
            now,
            [
                queue.NewJob(
                    user_id=user_id,
                    upload_session_id=upload_id,
                    chunk_key=key,
                    raw_file_ids=tuple(ids),
                    object_name="M 81",
                    telescope=telescope,
                    filter_name=filter_name,
                    exptime=exptime,
                )
            ],
        )
        with self.state.session_factory() as session:
            claimed = queue.claim_next_job(session, now, worker_id="w", lease_seconds=60)
        assert claimed is not None and claimed.job_id == job_id
        fits_path = f"/crowdsky/stacks/user_{user_id}/M_81/stack_{key}_{job_id}.fits"
        thumb_path = fits_path.replace(".fits", "_thumb.png")
        target = self.results.path_for(fits_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        hdus: list[Any] = [fits.PrimaryHDU()]
        hdus += [fits.ImageHDU(np.zeros((6, 8), np.float32), name=n) for n in ("RED", "GREEN")]
        if stars:
            table = np.zeros(2, dtype=[(n, "f8") for n in ("x", "y", "flux", "a", "b", "peak")])
            table["x"] = [1.5, 2.5]
            table["flux"] = [100.0, np.nan]
            hdus.append(fits.BinTableHDU(table, name="STAR-TAB"))
        fits.HDUList(hdus).writeto(target)
        if thumbnail:
            self.results.path_for(thumb_path).write_bytes(b"\x89PNG\r\n\x1a\nthumb")
        completion = queue.Completion(
            job_id=job_id,
            ucloud_path=fits_path,
            thumbnail_path=thumb_path if thumbnail else None,
            n_frames_input=frames,
            n_frames_aligned=frames,
            total_exptime=exptime * frames,
            date_obs_start=when,
            date_obs_end=when + timedelta(seconds=10 * frames),
            ra_deg=ra,
            dec_deg=dec,
            file_size_bytes=target.stat().st_size,
            n_stars_detected=2 if stars else 0,
        )
        with self.state.session_factory() as session:
            outcome = queue.complete_job(
                session,
                now,
                completion,
                worker_id="w",
                lease_token=claimed.lease_token,
            )
            assert outcome.freed is not None
            retention.delete_freed(session, self.state.raw_store, outcome.freed)
        return outcome.stacked_frame_id

    def bearer(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or SERVICE_KEY}"}


@pytest.fixture
def env(test_db: TestDatabase, tmp_path: Path) -> Iterator[Env]:
    with running_env(test_db, tmp_path) as built:
        yield built


@contextlib.contextmanager
def running_env(test_db: TestDatabase, tmp_path: Path, **settings_kw: Any) -> Iterator[Env]:
    """An in-process server on ``test_db`` with users alice and bob (alice has a key)."""
    settings = load_server_settings(
        database_url=test_db.url,
        data_dir=tmp_path / "data",
        worker_api_key=WORKER_KEY,
        data_api_key=SERVICE_KEY,
        cleanup_interval_seconds=0,
        **settings_kw,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        state: ServerState = app.state.crowdsky
        with state.session_factory() as session:
            for name in ("alice", "bob"):
                create_user(
                    session, utcnow(), username=name, email=f"{name}@example.org", password=PASSWORD
                )
            key = create_api_key(session, utcnow(), username="alice", name="app").key
        yield Env(client, state, key)


CLIENT_FIELDS = (
    "id",
    "chunk_key",
    "object_name",
    "telescope_id",
    "filter_name",
    "date_obs_start",
    "date_obs_end",
    "n_frames_input",
    "n_frames_aligned",
    "total_exptime",
    "ra_deg",
    "dec_deg",
    "file_size_bytes",
    "created_at",
    "eq_mode",
    "sqm",
    "healpix",
    "private",
)
ALICE = ("alice", PASSWORD)
BOB = ("bob", PASSWORD)


def pixel(ra: float, dec: float) -> int:
    return int(HEALPix(nside=128, order="ring").lonlat_to_healpix(ra * u.deg, dec * u.deg))


# -- my_stacks -------------------------------------------------------------------------


def test_my_stacks_is_the_whole_list_with_every_client_field(env: Env) -> None:
    ids = [env.make_stack(when=T0 + timedelta(minutes=15 * i)) for i in range(120)]
    env.make_stack("bob")
    r = env.client.get("/api/my_stacks.php", auth=ALICE)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    items = r.json()
    assert isinstance(items, list) and len(items) == 120  # more than any old default page
    assert [i["id"] for i in items] == sorted(ids, reverse=True)  # newest observation first
    first = items[0]
    for name in CLIENT_FIELDS:
        assert name in first, name
    StackItem.model_validate(first)
    assert isinstance(first["telescope_id"], int) and first["filter_name"] == "LP"
    assert first["eq_mode"] == 0 and first["sqm"] is None and first["private"] is False
    assert first["healpix"] == pixel(148.97, 69.68)
    assert first["date_obs_start"] == "2026-03-03T02:45:00Z"
    assert len({i["telescope_id"] for i in items}) == 1
    # the API key works like the login; the object filter and paging for new clients
    assert len(env.client.get("/api/my_stacks", headers=env.bearer(env.alice_key)).json()) == 120
    assert env.client.get("/api/my_stacks.php", params={"object": "M 82"}, auth=ALICE).json() == []
    page = env.client.get("/api/my_stacks.php", params={"limit": 5, "offset": 2}, auth=ALICE)
    assert [i["id"] for i in page.json()] == [i["id"] for i in items[2:7]]
    late = env.client.get(
        "/api/my_stacks.php", params={"since": "2100-01-01T00:00:00Z"}, auth=ALICE
    )
    assert late.json() == []


def test_login_probe_and_bad_input(env: Env) -> None:
    assert env.client.get("/api/my_stacks.php", auth=BOB).json() == []
    for auth in (("alice", "wrong password"), ("nobody", PASSWORD)):
        r = env.client.get("/api/my_stacks.php", auth=auth)
        assert r.status_code == 401 and "error" in r.json()
    assert env.client.get("/api/my_stacks.php").status_code == 401
    for params in ({"limit": 0}, {"offset": -1}, {"since": "yesterday"}, {"limit": "x"}):
        r = env.client.get("/api/my_stacks.php", params=params, auth=ALICE)
        assert r.status_code == 400 and r.json()["error"], params


# -- download_stack, thumbnail, privacy ----------------------------------------------------


def test_download_stack_streams_with_the_exact_disposition(env: Env) -> None:
    stack_id = env.make_stack()
    (item,) = env.client.get("/api/my_stacks.php", auth=ALICE).json()
    r = env.client.get(
        "/api/download_stack.php", params={"chunk_key": item["chunk_key"]}, auth=ALICE
    )
    assert r.status_code == 200, r.text
    disposition = r.headers["content-disposition"]
    name = Path(item["ucloud_path"]).name
    assert disposition == f'attachment; filename="{name}"'
    assert disposition.split("filename=")[-1].strip('"') == name  # seestarpy's parsing
    assert r.content.startswith(b"SIMPLE  =") and len(r.content) == item["file_size_bytes"]
    thumb = env.client.get("/api/thumbnail.php", params={"id": stack_id}, auth=ALICE)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/png"
    assert thumb.content.startswith(b"\x89PNG")
    assert env.client.get("/thumbnail.php", params={"id": stack_id}, auth=ALICE).status_code == 200
    # another user's stack is not found, neither by key nor by id
    r = env.client.get("/api/download_stack.php", params={"chunk_key": item["chunk_key"]}, auth=BOB)
    assert r.status_code == 404 and "error" in r.json()
    assert (
        env.client.get("/api/thumbnail.php", params={"id": stack_id}, auth=BOB).status_code == 404
    )
    for params in ({"chunk_key": "20990101.00_HP000001"}, {"chunk_key": "../x"}, {}):
        r = env.client.get("/api/download_stack.php", params=params, auth=ALICE)
        assert r.status_code in (400, 404) and "error" in r.json(), params
    for params in ({"id": 999999}, {"id": 0}, {"id": "x"}, {"id": 2**70}):
        r = env.client.get("/api/thumbnail.php", params=params, auth=ALICE)
        assert r.status_code in (400, 404) and "error" in r.json(), params


def test_missing_files_are_404_not_500(env: Env) -> None:
    stack_id = env.make_stack(thumbnail=False)
    (item,) = env.client.get("/api/my_stacks.php", auth=ALICE).json()
    assert (
        env.client.get("/api/thumbnail.php", params={"id": stack_id}, auth=ALICE).status_code == 404
    )
    env.results.path_for(item["ucloud_path"]).unlink()
    r = env.client.get(
        "/api/download_stack.php", params={"chunk_key": item["chunk_key"]}, auth=ALICE
    )
    assert r.status_code == 404 and "not available" in r.json()["error"]


def test_privacy_per_stack_and_by_default(env: Env) -> None:
    public = env.make_stack()
    hidden = env.make_stack(when=T0 + timedelta(hours=1))
    r = env.client.post("/api/stack_privacy.php", data={"id": hidden, "private": "1"}, auth=ALICE)
    assert r.status_code == 200 and r.json() == {"ok": True, "id": hidden, "private": True}
    r = env.client.post("/api/stack_privacy.php", data={"id": hidden, "private": "1"}, auth=BOB)
    assert r.status_code == 404
    r = env.client.post(
        "/api/stack_privacy.php", data={"id": hidden, "private": "maybe"}, auth=ALICE
    )
    assert r.status_code == 400
    r = env.client.post("/api/stack_privacy.php", data={"private": "1"}, auth=BOB)
    assert r.json() == {"ok": True, "default_private": True}
    bobs = env.make_stack("bob", when=T0 + timedelta(hours=2))
    tile = pixel(148.97, 69.68)
    rows = env.client.get(
        "/api/frames_by_healpix.php", params={"healpix": tile}, headers=env.bearer()
    ).json()
    assert [row["id"] for row in rows] == [public]
    for stack_id in (hidden, bobs):
        r = env.client.get("/api/download_frame.php", params={"id": stack_id}, headers=env.bearer())
        assert r.status_code == 404
        r = env.client.get("/api/frame_stars.php", params={"id": stack_id}, headers=env.bearer())
        assert r.status_code == 404
    coverage = astropy_ascii.read(env.client.get("/api/sky_coverage.php").text, format="ecsv")
    assert list(coverage["n_stacks"]) == [1]
    # the owner still sees and downloads their private stacks
    mine = env.client.get("/api/my_stacks.php", auth=ALICE).json()
    assert {i["id"]: i["private"] for i in mine} == {public: False, hidden: True}


# -- data API ----------------------------------------------------------------------------


def test_frames_by_healpix_filters_and_order(env: Env) -> None:
    tile = pixel(148.97, 69.68)
    a = env.make_stack(when=T0 + timedelta(hours=2), filter_name="IRCUT")
    b = env.make_stack("bob", when=T0, eq_mode=1, exptime=20.0)
    c = env.make_stack(when=T0 + timedelta(hours=1))
    env.make_stack(ra=10.0, dec=-30.0)  # another tile
    url = "/api/frames_by_healpix.php"

    def ids(**params: Any) -> list[int]:
        r = env.client.get(url, params={"healpix": tile, **params}, headers=env.bearer())
        assert r.status_code == 200, r.text
        return [row["id"] for row in r.json()]

    assert ids() == [b, c, a]  # all users, by date_obs_start
    assert ids(filter="IRCUT") == [a] and ids(eq_mode=1) == [b]
    assert ids(min_exptime=60) == [b] and ids(min_sqm=18) == []
    assert ids(start="2026-03-01T22:00:00Z") == [c, a]
    assert ids(start="2026-03-01T22:00:00Z", end="2026-03-01T22:00:00Z") == [c]  # inclusive
    assert ids(end="2026-03-01T21:00:00") == [b]  # naive means UTC
    row = env.client.get(url, params={"healpix": tile}, headers=env.bearer()).json()[0]
    assert set(row) >= {
        "id", "object_name", "ra_deg", "dec_deg", "filter_name", "total_exptime", "eq_mode",
        "sqm", "n_frames_input", "n_frames_aligned", "n_stars_detected", "date_obs_start",
        "date_obs_end", "chunk_key", "download_url",
    }  # fmt: skip
    assert not {"sitelat", "sitelong", "site_lat", "user_id"} & set(row)
    download = env.client.get(row["download_url"], headers=env.bearer())
    assert download.status_code == 200 and download.content.startswith(b"SIMPLE  =")
    # a user's own API key reads every user's published stacks too
    r = env.client.get(url, params={"healpix": tile}, headers=env.bearer(env.alice_key))
    assert [x["id"] for x in r.json()] == [b, c, a]
    assert env.client.get(url, params={"healpix": 0}, headers=env.bearer()).json() == []


def test_data_api_bad_input_is_a_clear_4xx(env: Env) -> None:
    env.make_stack()
    url = "/api/frames_by_healpix.php"
    assert env.client.get(url, params={"healpix": 1}).status_code == 401
    assert (
        env.client.get(url, params={"healpix": 1}, headers=env.bearer("x" * 48)).status_code == 401
    )
    for params in (
        {"healpix": -1},
        {"healpix": 196608},
        {"healpix": "abc"},
        {},
        {"healpix": 1, "start": "2026-03-02T00:00:00Z", "end": "2026-03-01T00:00:00Z"},
        {"healpix": 1, "start": "not a date"},
        {"healpix": 1, "eq_mode": 2},
        {"healpix": 1, "min_sqm": "nan"},
    ):
        r = env.client.get(url, params=params, headers=env.bearer())
        assert r.status_code == 400 and r.json()["error"], params
    download = "/api/download_frame.php"
    for value, status in (
        ("999999", 404),
        ("0", 400),
        ("1,x", 400),
        ("", 400),
        (",".join(str(i) for i in range(1, 300)), 400),
        ("9" * 5000, 400),
    ):
        r = env.client.get(download, params={"id": value}, headers=env.bearer())
        assert r.status_code == status and r.json()["error"], value
    for value in ("999999", "0", "x"):
        r = env.client.get("/api/frame_stars.php", params={"id": value}, headers=env.bearer())
        assert r.status_code in (400, 404) and r.json()["error"], value


def test_download_frame_lists_and_frame_stars(env: Env) -> None:
    a = env.make_stack()
    b = env.make_stack("bob", stars=False)
    r = env.client.get("/api/download_frame.php", params={"id": f"{b},{a}"}, headers=env.bearer())
    assert r.status_code == 200
    listed = r.json()
    assert [i["id"] for i in listed] == [b, a]
    assert set(listed[0]) == {
        "id",
        "chunk_key",
        "object_name",
        "filename",
        "file_size_bytes",
        "download_url",
    }
    assert listed[0]["filename"].endswith(".fits")
    r = env.client.get(
        "/api/download_frame.php", params={"id": f"{a},999999"}, headers=env.bearer()
    )
    assert r.status_code == 404 and "999999" in r.json()["error"]
    single = env.client.get("/api/download_frame.php", params={"id": a}, headers=env.bearer())
    assert single.headers["content-type"] == "application/fits"
    stars = env.client.get("/api/frame_stars.php", params={"id": a}, headers=env.bearer())
    assert stars.status_code == 200
    body = stars.json()
    assert (body["width"], body["height"]) == (8, 6)
    assert [s["x"] for s in body["stars"]] == [1.5, 2.5]
    assert body["stars"][1]["flux"] is None and body["stars"][0]["ra"] is None
    assert set(body["stars"][0]) == {"x", "y", "flux", "a", "b", "flag", "peak", "ra", "dec"}
    r = env.client.get("/api/frame_stars.php", params={"id": b}, headers=env.bearer())
    assert r.status_code == 404 and "star table" in r.json()["error"]


def test_sky_coverage_is_ecsv_for_astropy(env: Env) -> None:
    empty = astropy_ascii.read(env.client.get("/api/sky_coverage.php").text, format="ecsv")
    assert len(empty) == 0
    env.make_stack(when=T0, exptime=10.0)
    env.make_stack(when=T0 + timedelta(hours=3), exptime=20.0)
    env.make_stack("bob", when=T0 + timedelta(hours=1))
    env.make_stack("bob", filter_name="IRCUT")
    env.make_stack(ra=10.0, dec=-30.0)
    r = env.client.get("/api/sky_coverage.php")
    assert r.status_code == 200 and r.text.startswith("# %ECSV 1.0")
    table = astropy_ascii.read(r.text, format="ecsv")
    assert table.colnames == [
        "healpix_ring", "filter_name", "n_stacks", "total_exptime_s", "n_observers",
        "first_obs", "last_obs",
    ]  # fmt: skip
    assert table["healpix_ring"].dtype == np.int64 and table["n_stacks"].dtype == np.int64
    rows = {(int(r["healpix_ring"]), str(r["filter_name"])): r for r in table}
    lp = rows[(pixel(148.97, 69.68), "LP")]
    assert (lp["n_stacks"], lp["n_observers"]) == (3, 2)
    assert lp["total_exptime_s"] == pytest.approx(30 + 60 + 30)
    assert lp["first_obs"] == "2026-03-01T21:00:00Z" and lp["last_obs"] == "2026-03-02T00:00:00Z"
    assert rows[(pixel(148.97, 69.68), "IRCUT")]["n_stacks"] == 1
    assert rows[(pixel(10.0, -30.0), "LP")]["n_stacks"] == 1
    assert json.loads(json.dumps(len(table))) == 3


# -- upload_stack ----------------------------------------------------------------------


def write_seestar_stack(path: Path, *, ra: float = 148.97, dec: float = 69.68) -> Path:
    """A small stack shaped like the Seestar's: a 3-plane 16-bit cube with its header."""
    rng = np.random.default_rng(3)
    cube = rng.normal(1000, 10, size=(3, 64, 96))
    for x, y in ((20, 20), (70, 40), (50, 10)):
        cube[:, y - 2 : y + 3, x - 2 : x + 3] += 5000
    header = fits.Header()
    header["DATE-OBS"] = "2026-02-27T22:30:05.000"
    header["EXPTIME"] = 380.0
    header["STACKCNT"] = 38
    header["RA"], header["DEC"] = ra, dec
    header["OBJECT"], header["FILTER"] = "M 81", "LP"
    header["TELESCOP"], header["INSTRUME"] = "Seestar S50 1", "Seestar S50"
    header["EQMODE"] = 1
    header["SITELAT"], header["SITELONG"] = 48.2, 16.4
    fits.PrimaryHDU(cube.astype(np.uint16), header=header).writeto(path)
    return path


def test_upload_stack_queues_a_postprocess_job(env: Env, tmp_path: Path) -> None:
    stack = write_seestar_stack(tmp_path / "CrowdSky_38_M 81_10.0s_LP_20260227.90_HP000000.fit")
    url = "/api/upload_stack.php"

    def send(**data: str) -> Any:
        with stack.open("rb") as handle:
            return env.client.post(
                url,
                files={"file": (stack.name, handle), "thumbnail": ("t.png", b"\x89PNG")},
                data={"n_frames_input": "38", "scrub_location": "1", **data},
                auth=ALICE,
            )

    r = send()
    assert r.status_code == 200, r.text
    body = r.json()
    key = f"20260227.90_HP{pixel(148.97, 69.68):06d}"
    assert body == {"ok": True, "job_id": body["job_id"], "chunk_key": key, "status": "queued"}
    with env.state.session_factory() as session:
        claimed = queue.claim_next_job(session, utcnow(), worker_id="w", lease_seconds=60)
        assert claimed is not None and claimed.kind == "postprocess"
        files = queue.list_job_files(session, job_id=claimed.job_id)
    (entry,) = files.files
    stored = fits.getheader(env.state.raw_store.resolve(entry.storage_path))
    assert "SITELAT" not in stored and stored["STACKCNT"] == 38  # scrubbed before queueing
    # a second upload of the same chunk and telescope is refused until overwrite=1
    again = send()
    assert again.status_code == 409 and "overwrite=1" in again.json()["error"]
    assert send(overwrite="1").status_code == 200
    # bad input
    r = env.client.post(url, files={"file": ("x.fit", b"not fits")}, auth=ALICE)
    assert r.status_code == 400 and r.json()["error"]
    r = env.client.post(url, data={"n_frames_input": "3"}, auth=ALICE)
    assert r.status_code == 400
    assert send(n_frames_input="many").status_code == 400
    assert send(overwrite="perhaps").status_code == 400
    assert env.client.post(url, files={"file": ("x.fit", b"")}, auth=BOB).status_code == 400
    assert env.client.post(url, files={"file": ("x.fit", b"x")}).status_code == 401
