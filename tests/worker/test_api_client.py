"""ApiClient against httpx.MockTransport: the spec's calls, retries, 204, 409, 401, leases."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from crowdsky.worker.api_client import ApiClient
from crowdsky.worker.errors import (
    ApiAuthError,
    ApiError,
    ApiUnavailable,
    DownloadError,
    LeaseLost,
)
from tests.worker.fakes import API, KEY, FakeWorkerApi, no_wait_retry


def client(fake: FakeWorkerApi, attempts: int = 3, key: str = KEY) -> ApiClient:
    return ApiClient(API, key, "w-test", transport=fake.transport, retry=no_wait_retry(attempts))


def test_next_job_claims_and_204_means_none() -> None:
    fake = FakeWorkerApi()
    fake.add_job(42)
    with client(fake) as api:
        job = api.get_next_job()
        assert job is not None
        assert job["job_id"] == 42
        assert job["chunk_key"] == "20250115.78_83.6_+22.0"
        assert api.lease_token(42) == "lease-42-1"
        assert api.get_next_job() is None
    assert fake.calls[0][2] == {"worker_id": "w-test"}


def test_bearer_key_and_401_is_not_retried() -> None:
    fake = FakeWorkerApi()
    with client(fake, key="wrong") as api, pytest.raises(ApiAuthError, match="WORKER_API_KEY"):
        api.get_next_job()
    assert len(fake.calls) == 0  # rejected before being recorded, and only once


def test_transient_5xx_is_retried_then_succeeds() -> None:
    fake = FakeWorkerApi()
    fake.add_job(1)
    fake.next_job_errors = 2
    with client(fake, attempts=3) as api:
        assert api.get_next_job() is not None


def test_exhausted_retries_raise_unavailable() -> None:
    fake = FakeWorkerApi()
    fake.down = True
    with client(fake, attempts=3) as api, pytest.raises(ApiUnavailable, match="unavailable"):
        api.get_next_job()
    assert len(fake.calls) == 0  # connection refused three times, never reached the handler


def test_429_honours_retry_after() -> None:
    waits: list[float] = []
    answers = [httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(204)]

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    from crowdsky.worker.retry import RetryPolicy

    policy = RetryPolicy(attempts=3, base_delay_seconds=0.0, sleep=waits.append)
    with ApiClient(API, KEY, "w", transport=httpx.MockTransport(handler), retry=policy) as api:
        assert api.get_next_job() is None
    assert waits == [2.0]


def test_job_files_and_download_with_size_check(tmp_path: Path) -> None:
    fake = FakeWorkerApi()
    job = fake.add_job(5, n_files=2)
    with client(fake) as api:
        listing = api.get_job_files(5)
        assert [int(f["id"]) for f in listing["files"]] == list(job.files)
        entry = listing["files"][0]
        target = tmp_path / entry["filename"]
        n = api.download_raw_file(
            int(entry["id"]), target, expected_size=int(entry["file_size_bytes"])
        )
        assert n == len(job.files[int(entry["id"])])
        assert target.read_bytes() == job.files[int(entry["id"])]
        assert not list(tmp_path.glob("*.part"))


def test_download_size_mismatch_is_an_error(tmp_path: Path) -> None:
    fake = FakeWorkerApi()
    job = fake.add_job(5, n_files=1)
    fid, data = next(iter(job.files.items()))
    with client(fake) as api:
        with pytest.raises(DownloadError, match="expected"):
            api.download_raw_file(fid, tmp_path / "a.fit", expected_size=len(data) + 1)
        fake.truncate_downloads = True
        with pytest.raises(DownloadError):
            api.download_raw_file(fid, tmp_path / "b.fit", expected_size=len(data))
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


def test_download_of_missing_raw_is_404(tmp_path: Path) -> None:
    fake = FakeWorkerApi()
    with client(fake) as api, pytest.raises(DownloadError, match="404"):
        api.download_raw_file(999, tmp_path / "x.fit")
    assert len(fake.paths("download_raw.php")) == 1  # 404 is final


def test_reports_carry_worker_id_and_lease_token() -> None:
    fake = FakeWorkerApi()
    fake.add_job(9)
    with client(fake) as api:
        api.get_next_job()
        api.heartbeat(9, progress=0.5, message="stacking")
        assert api.complete_job(9, {"ucloud_path": "/x.fits"}) == {"ok": True, "replaced_files": []}
    body = fake.paths("complete_job.php")[0]
    assert body["worker_id"] == "w-test"
    assert body["lease_token"] == "lease-9-1"
    assert body["job_id"] == 9
    assert fake.jobs[9].progress == [0.5]


def test_409_means_lease_lost() -> None:
    fake = FakeWorkerApi()
    fake.add_job(9)
    with client(fake) as api:
        api.get_next_job()
        fake.jobs[9].lease_token = "someone-else"
        with pytest.raises(LeaseLost):
            api.heartbeat(9)
        with pytest.raises(LeaseLost):
            api.complete_job(9, {"ucloud_path": "/x"})


def test_fail_job_truncates_and_returns_status() -> None:
    fake = FakeWorkerApi()
    fake.add_job(3)
    with client(fake) as api:
        api.get_next_job()
        reply = api.fail_job(3, "x" * 5000)
    assert reply["status"] == "retry"
    assert len(fake.jobs[3].error_messages[0]) == 500


def test_reports_replace_what_the_server_refuses() -> None:
    """An exception's text may hold a NUL or a lone surrogate (undecodable bytes): the
    server answers 400 to those, which would leave the failure unreported."""
    fake = FakeWorkerApi()
    fake.add_job(3)
    with client(fake) as api:
        api.get_next_job()
        api.fail_job(3, "cannot open 'Light\x00.fit': \udcff bad byte")
    assert fake.jobs[3].error_messages[0] == "cannot open 'Light\ufffd.fit': \ufffd bad byte"


def test_4xx_error_message_is_kept() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": "job_id is required."})

    api = ApiClient(API, KEY, "w", transport=httpx.MockTransport(handler))
    with api, pytest.raises(ApiError, match="job_id is required") as info:
        api.get_job_files(1)
    assert info.value.status_code == 400


def test_claim_is_not_repeated_after_a_read_timeout() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        raise httpx.ReadTimeout("no reply", request=request)

    api = ApiClient(API, KEY, "w", transport=httpx.MockTransport(handler), retry=no_wait_retry(4))
    with api:
        with pytest.raises(ApiUnavailable):
            api.get_next_job()  # the server may have claimed a job: do not claim another
        assert len(calls) == 1
        with pytest.raises(ApiUnavailable):
            api.get_job_files(1)  # reads are safe to repeat
        assert len(calls) == 5


def test_release_job_uses_the_extension_and_falls_back_to_fail_job() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path.endswith("release_job.php"):
            if len(seen) == 1:
                return httpx.Response(200, json={"ok": True, "status": "pending"})
            return httpx.Response(404, json={"error": "No such endpoint."})
        return httpx.Response(200, json={"ok": True, "status": "retry"})

    with ApiClient(API, KEY, "w", transport=httpx.MockTransport(handler)) as api:
        assert api.release_job(7, "worker shutting down") == {"ok": True, "status": "pending"}
        # an older server without the extension: hand back with fail_job instead
        assert api.release_job(7, "worker shutting down")["status"] == "retry"
    assert seen == ["/api/release_job.php", "/api/release_job.php", "/api/fail_job.php"]


def test_download_follows_the_redirect_to_the_store_without_the_key(tmp_path: Path) -> None:
    """An object-store server answers 307 to a presigned URL on another origin."""
    seen: list[httpx.Request] = []
    store_url = "http://store.test:8333/raws/user_1/sess_x/a.fit?X-Amz-Signature=abc"

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "crowdsky.test":
            return httpx.Response(307, headers={"Location": store_url})
        return httpx.Response(200, content=b"raw frame bytes")

    with ApiClient(API, KEY, "w", transport=httpx.MockTransport(handler)) as api:
        size = api.download_raw_file(7, tmp_path / "a.fit", expected_size=15)
    assert size == 15 and (tmp_path / "a.fit").read_bytes() == b"raw frame bytes"
    assert [r.url.host for r in seen] == ["crowdsky.test", "store.test"]
    assert seen[0].headers["Authorization"] == f"Bearer {KEY}"
    assert "Authorization" not in seen[1].headers  # the worker key never reaches the store
