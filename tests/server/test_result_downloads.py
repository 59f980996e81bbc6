"""Downloads read through every result store: local, a real WebDAV share, real S3.

The server's ``CROWDSKY_RESULT_STORE`` names where workers published the stacks;
``download_stack``, ``download_frame``, ``thumbnail``, ``frame_stars`` and the web
downloads stream from it (``server/stack_files.py``), in the product's format or as
an interchange copy (``?format=cube|tiff``). SQLite only: the store, not the database,
is under test (the backend matrix is ``test_client_api.py``).
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from astropy.io import fits

from crowdsky.storage import s3_client
from crowdsky.storage.s3_result_store import S3ResultStore
from tests.db_backends import TestDatabase
from tests.server.test_client_api import ALICE, PASSWORD, Env, running_env
from tests.support.seaweedfs import SeaweedCluster
from tests.support.webdav_server import WebDavServer

Publish = Callable[[str, bytes], None]


def product_bytes() -> bytes:
    """A small CrowdSky product: header-only PRIMARY, RED/GREEN/BLUE with one NaN pixel."""
    planes = np.arange(3 * 6 * 8, dtype=np.float32).reshape(3, 6, 8) + 100
    planes[:, 0, 0] = np.nan
    hdus: list[Any] = [fits.PrimaryHDU()]
    hdus += [
        fits.ImageHDU(p, name=n) for p, n in zip(planes, ("RED", "GREEN", "BLUE"), strict=True)
    ]
    buffer = io.BytesIO()
    fits.HDUList(hdus).writeto(buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def share(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDavServer]:
    server = WebDavServer(tmp_path_factory.mktemp("webdav"))
    server.start()
    yield server
    server.stop()


def _move_results(env: Env, publish: Publish) -> None:
    """Publish every file of the local results folder to the store, then delete it
    locally, so a reply can only come from the store."""
    root = env.results.root
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        publish("/" + path.relative_to(root).as_posix(), path.read_bytes())
        path.unlink()


def _stack(env: Env) -> tuple[int, dict[str, Any], bytes]:
    stack_id = env.make_stack()
    (item,) = env.client.get("/api/my_stacks.php", auth=ALICE).json()
    data = product_bytes()
    env.results.path_for(item["ucloud_path"]).write_bytes(data)
    return stack_id, item, data


def _check_downloads(env: Env, stack_id: int, item: dict[str, Any], data: bytes) -> None:
    name = Path(item["ucloud_path"]).name
    key = {"chunk_key": item["chunk_key"]}
    r = env.client.get("/api/download_stack.php", params=key, auth=ALICE)
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"] == f'attachment; filename="{name}"'
    assert r.content == data
    thumb = env.client.get("/api/thumbnail.php", params={"id": stack_id}, auth=ALICE)
    assert thumb.status_code == 200 and thumb.content.startswith(b"\x89PNG")
    framed = env.client.get(
        "/api/download_frame.php", params={"id": stack_id}, headers=env.bearer()
    )
    assert framed.status_code == 200 and framed.content == data
    cube = env.client.get("/api/download_stack.php", params={**key, "format": "cube"}, auth=ALICE)
    assert cube.status_code == 200 and cube.headers["content-type"] == "application/fits"
    stem = name.removesuffix(".fits")
    assert cube.headers["content-disposition"] == f'attachment; filename="{stem}_cube.fits"'
    with fits.open(io.BytesIO(cube.content)) as hdul:
        assert hdul[0].data.shape == (3, 6, 8) and np.isfinite(hdul[0].data).all()
        assert hdul["MASK"].data[0, 0] == 1
    tiff = env.client.get(
        "/api/download_frame.php", params={"id": stack_id, "format": "tiff"}, headers=env.bearer()
    )
    assert tiff.status_code == 200 and tiff.headers["content-type"] == "image/tiff"
    assert tiff.content[:4] in (b"II*\x00", b"MM\x00*")
    assert tiff.headers["content-disposition"] == f'attachment; filename="{stem}.tif"'
    for bad in ("png", "", "CUBE"):
        r = env.client.get("/api/download_stack.php", params={**key, "format": bad}, auth=ALICE)
        assert r.status_code == 400 and "format" in r.json()["error"], bad
    r = env.client.get(
        "/api/download_frame.php",
        params={"id": f"{stack_id},{stack_id + 1}", "format": "cube"},
        headers=env.bearer(),
    )
    assert r.status_code in (400, 404) and "error" in r.json()


def _web_login(env: Env) -> str:
    page = env.client.get("/login")
    token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert token is not None
    reply = env.client.post(
        "/login",
        data={"csrf_token": token.group(1), "login": "alice", "password": PASSWORD},
        follow_redirects=False,
    )
    assert reply.status_code == 303, reply.text
    found = re.search(r'name="csrf-token" content="([^"]+)"', env.client.get("/stacks").text)
    assert found is not None
    return found.group(1)


def _check_web(env: Env, stack_id: int, data: bytes, missing_id: int) -> None:
    csrf = _web_login(env)
    r = env.client.get(f"/web/api/stacks/{stack_id}/fits")
    assert r.status_code == 200 and r.content == data
    assert r.headers["content-disposition"].startswith('attachment; filename="')
    r = env.client.get(f"/web/api/stacks/{stack_id}/fits", params={"format": "tiff"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/tiff"
    assert (
        env.client.get(f"/web/api/stacks/{stack_id}/fits", params={"format": "x"}).status_code
        == 400
    )
    assert env.client.get(f"/web/api/stacks/{stack_id}/thumbnail").status_code == 200
    r = env.client.post(
        "/web/api/stacks/zip", data={"ids": f"{stack_id},{missing_id}", "csrf_token": csrf}
    )
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
        names = archive.namelist()
        assert archive.read(names[0]) == data
        assert names[-1] == "MISSING.txt"
    r = env.client.post("/web/api/stacks/zip", data={"ids": f"{missing_id}", "csrf_token": csrf})
    assert r.status_code == 404


def _delete_in_web_app(env: Env, stack_id: int, exists: Callable[[str], bool]) -> None:
    """Deleting a stack's job in the web app deletes its FITS, thumbnail and star list
    from the store the server reads (not only from a local folder)."""
    item = next(
        i for i in env.client.get("/api/my_stacks.php", auth=ALICE).json() if i["id"] == stack_id
    )
    fits_path, thumb_path = item["ucloud_path"], item["thumbnail_path"]
    stars_path = fits_path.removesuffix(".fits") + "_stars.json"
    assert all(exists(p) for p in (fits_path, thumb_path, stars_path))
    csrf = _web_login(env)
    r = env.client.post(f"/web/api/jobs/{item['job_id']}/delete", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    assert not any(exists(p) for p in (fits_path, thumb_path, stars_path))


def test_downloads_from_a_webdav_share(
    sqlite_db: TestDatabase, tmp_path: Path, share: WebDavServer
) -> None:
    def publish(remote: str, body: bytes) -> None:
        target = share.share_file(remote)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)

    with running_env(
        sqlite_db,
        tmp_path,
        result_store="webdav",
        results_webdav_url=share.legacy_url,
        results_share_token=share.token,
    ) as env:
        stack_id, item, data = _stack(env)
        gone = env.make_stack(when=item_time(item, hours=2))
        doomed = _with_star_list(env, env.make_stack(when=item_time(item, hours=4)))
        _move_results(env, publish)
        share.share_file(_path_of(env, gone)).unlink()
        _check_downloads(env, stack_id, item, data)
        _check_web(env, stack_id, data, gone)
        _delete_in_web_app(env, doomed, lambda remote: share.share_file(remote).is_file())
        reads = [r for r in share.requests() if r["method"] == "GET"]
        assert reads and all(r["x_requested_with"] == "XMLHttpRequest" for r in reads)
        share.share_file(item["ucloud_path"]).unlink()
        r = env.client.get(
            "/api/download_stack.php", params={"chunk_key": item["chunk_key"]}, auth=ALICE
        )
        assert r.status_code == 404 and "not available" in r.json()["error"]
        share.stop()
        try:
            r = env.client.get("/api/thumbnail.php", params={"id": stack_id}, auth=ALICE)
            assert r.status_code == 503 and "error" in r.json()
        finally:
            share.start()


def test_downloads_from_s3_redirect_or_relay(
    sqlite_db: TestDatabase, tmp_path: Path, seaweedfs: SeaweedCluster, s3_bucket: str
) -> None:
    url = f"s3://{s3_bucket}/results"
    store = S3ResultStore(seaweedfs.client(), s3_client.parse_s3_url(url))
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    def publish(remote: str, body: bytes) -> None:
        local = scratch / "f"
        local.write_bytes(body)
        store.upload_file(local, remote)

    with running_env(
        sqlite_db,
        tmp_path,
        result_store=url,
        s3_endpoint_url=seaweedfs.s3_url,
        s3_access_key_id=seaweedfs.access_key,
        s3_secret_access_key=seaweedfs.secret_key,
        s3_region=seaweedfs.region,
    ) as env:
        stack_id, item, data = _stack(env)
        gone = env.make_stack(when=item_time(item, hours=2))
        doomed = _with_star_list(env, env.make_stack(when=item_time(item, hours=4)))
        _move_results(env, publish)
        store.delete_files([_path_of(env, gone)])
        _delete_in_web_app(env, doomed, lambda remote: store.object_size(remote) is not None)
        key = {"chunk_key": item["chunk_key"]}
        r = env.client.get(
            "/api/download_stack.php", params=key, auth=ALICE, follow_redirects=False
        )
        assert r.status_code == 307
        fetched = httpx.get(r.headers["location"])  # what requests/seestarpy do next
        assert fetched.status_code == 200 and fetched.content == data
        name = Path(item["ucloud_path"]).name
        assert fetched.headers["content-disposition"] == f'attachment; filename="{name}"'
        env.state.settings = env.state.settings.model_copy(update={"s3_redirect_results": False})
        _check_downloads(env, stack_id, item, data)
        _check_web(env, stack_id, data, gone)
        r = env.client.get("/api/download_frame.php", params={"id": gone}, headers=env.bearer())
        assert r.status_code == 404 and "error" in r.json()


def _with_star_list(env: Env, stack_id: int) -> int:
    """Write the star list a worker publishes beside the stack's FITS file."""
    fits_path = _path_of(env, stack_id)
    env.results.path_for(fits_path.removesuffix(".fits") + "_stars.json").write_text("{}")
    return stack_id


def item_time(item: dict[str, Any], *, hours: int) -> Any:
    from datetime import datetime, timedelta

    return datetime.fromisoformat(item["date_obs_start"].replace("Z", "+00:00")) + timedelta(
        hours=hours
    )


def _path_of(env: Env, stack_id: int) -> str:
    for item in env.client.get("/api/my_stacks.php", auth=ALICE).json():
        if item["id"] == stack_id:
            return str(item["ucloud_path"])
    raise AssertionError(f"no stack {stack_id}")
