"""``worker/presigned_store.py``: results PUT to the URLs the server signs for a job."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from crowdsky.worker.api_client import ApiClient
from crowdsky.worker.errors import StorageError
from crowdsky.worker.presigned_store import PresignedResultStore
from tests.worker.fakes import API, KEY, no_wait_retry

STACK = "/stacks/user_1/M42/stack_K_7.fits"
THUMB = "/stacks/user_1/M42/stack_K_7_thumb.png"
STORE = "http://store.test/results"


class FakeServerAndStore:
    """The API's result_upload_urls and an S3-like store answering the signed PUTs."""

    def __init__(self, store_failures: int = 0, store_status: int = 200) -> None:
        self.asked: list[dict[str, object]] = []
        self.stored: dict[str, bytes] = {}
        self.lengths: list[str | None] = []
        self.store_failures = store_failures
        self.store_status = store_status

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/result_upload_urls.php"):
            self.asked.append(json.loads(request.content))
            files = [
                {"kind": "fits", "path": STACK, "url": f"{STORE}{STACK}?X-Amz-Signature=s"},
                {"kind": "thumbnail", "path": THUMB, "url": f"{STORE}{THUMB}?X-Amz-Signature=t"},
            ]
            return httpx.Response(200, json={"job_id": 7, "expires_in": 300, "files": files})
        assert request.method == "PUT" and "authorization" not in request.headers
        if self.store_failures:
            self.store_failures -= 1
            return httpx.Response(503)
        self.lengths.append(request.headers.get("content-length"))
        if self.store_status != 200:
            return httpx.Response(self.store_status, text="<Error>AccessDenied</Error>")
        self.stored[request.url.path] = request.read()
        return httpx.Response(200)


def _store(fake: FakeServerAndStore) -> PresignedResultStore:
    transport = httpx.MockTransport(fake.handler)
    api = ApiClient(API, KEY, "w-test", transport=transport, retry=no_wait_retry())
    api.remember_lease(7, "lease-7")
    return PresignedResultStore(api, transport=transport, retry=no_wait_retry())


def test_the_job_paths_come_from_the_server_and_files_are_put_whole(tmp_path: Path) -> None:
    fake = FakeServerAndStore(store_failures=1)  # one 503: retried
    store = _store(fake)
    paths = store.prepare_job(7)
    assert (paths.fits, paths.thumbnail, paths.folder) == (STACK, THUMB, "/stacks/user_1/M42")
    assert fake.asked == [{"job_id": 7, "worker_id": "w-test", "lease_token": "lease-7"}]
    stack = tmp_path / "stack.fits"
    stack.write_bytes(b"SIMPLE  =" + b"x" * 3_000_000)
    seen: list[int] = []
    assert store.upload_file(stack, paths.fits, on_bytes=seen.append) == stack.stat().st_size
    assert fake.stored[f"/results{STACK}"] == stack.read_bytes()
    assert fake.lengths == [str(stack.stat().st_size)]  # S3 refuses chunked uploads
    assert sum(seen) >= stack.stat().st_size
    with pytest.raises(StorageError, match="signed no upload"):
        store.upload_file(stack, paths.fits)  # each URL is used once
    store.close()


def test_a_path_the_server_did_not_sign_or_a_refused_put_is_a_storage_error(
    tmp_path: Path,
) -> None:
    fake = FakeServerAndStore(store_status=403)
    store = _store(fake)
    paths = store.prepare_job(7)
    thumb = tmp_path / "thumb.png"
    thumb.write_bytes(b"\x89PNG")
    with pytest.raises(StorageError, match="signed no upload"):
        store.upload_file(thumb, "/elsewhere/thumb.png")
    with pytest.raises(StorageError, match="HTTP 403") as refused:
        store.upload_file(thumb, paths.thumbnail)
    assert refused.value.status_code == 403
    store.close()
