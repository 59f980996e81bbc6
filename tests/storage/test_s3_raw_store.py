"""The raw-frame buffer on S3 (``storage/s3_raw_store.py``), on a real SeaweedFS cluster."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from crowdsky.storage import s3_client
from crowdsky.storage.raw_store import PARTIAL_PREFIX, UnsafePath, UploadTooLarge
from crowdsky.storage.s3_raw_store import NoLocalPath, S3RawStore
from tests.support.seaweedfs import SeaweedCluster

SESSION = "user_1/sess_abc"
PART = s3_client.MIN_PART_BYTES


@pytest.fixture
def store(seaweedfs: SeaweedCluster, s3_bucket: str, tmp_path: Path) -> Iterator[S3RawStore]:
    env = seaweedfs.s3_env()
    options = s3_client.S3Options(
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region=env["AWS_DEFAULT_REGION"],
        access_key_id=env["AWS_ACCESS_KEY_ID"],
        secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    store = S3RawStore(
        s3_client.make_client(options),
        s3_client.parse_s3_url(f"s3://{s3_bucket}/raws"),
        tmp_path / "staging",
        part_bytes=PART,
    )
    yield store
    store.close()


def _receive(store: S3RawStore, body: bytes, *, piece: int = 64 * 1024) -> Any:
    partial = store.open_partial(SESSION, max_bytes=64 * 1024 * 1024)
    for start in range(0, len(body), piece):
        partial.write(body[start : start + piece])
    return partial


def _wait_until_no_uploads(store: S3RawStore) -> list[Any]:
    deadline = time.monotonic() + 10
    while (left := store._multipart_uploads(store.location.prefix)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_a_multipart_upload_is_published_whole_with_its_hash(store: S3RawStore) -> None:
    body = os.urandom(2 * PART + 12345)  # three parts, the last one short
    partial = _receive(store, body)
    assert partial.finish() == hashlib.sha256(body).hexdigest()
    assert partial.path.read_bytes() == body  # the local copy the header check reads
    relative = store.publish(partial, "Light_M42_10.0s.fit")
    assert relative == f"{SESSION}/Light_M42_10.0s.fit"
    assert not partial.path.exists()
    got = store.client.get_object(Bucket=store.location.bucket, Key="raws/" + relative)
    assert got["Body"].read() == body
    # the staging object is gone, so the folder holds exactly the frame
    store.executor.submit(lambda: None).result()
    deadline = time.monotonic() + 5
    while len(store._list_keys("raws/" + SESSION + "/")) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store._list_keys("raws/" + SESSION + "/") == ["raws/" + relative]


def test_a_taken_name_gets_a_numbered_variant(store: S3RawStore) -> None:
    first = _receive(store, b"first frame")
    first.finish()
    second = _receive(store, b"second frame")
    second.finish()
    assert store.publish(first, "a.fit") == f"{SESSION}/a.fit"
    assert store.publish(second, "a.fit") == f"{SESSION}/a-2.fit"
    assert store.exists(f"{SESSION}/a.fit") and store.exists(f"{SESSION}/a-2.fit")


def test_too_large_and_discarded_uploads_leave_nothing(store: S3RawStore) -> None:
    partial = store.open_partial(SESSION, max_bytes=PART + 10)
    partial.write(os.urandom(PART))  # one part starts uploading
    with pytest.raises(UploadTooLarge):
        partial.write(b"x" * 11)
    partial.discard()
    assert _wait_until_no_uploads(store) == []
    assert not store.dir_exists(SESSION)
    assert not partial.path.exists()


def test_cleanup_aborts_stale_multipart_uploads(store: S3RawStore) -> None:
    """A server killed mid-upload leaves an unfinished upload; cleanup aborts it."""
    partial = _receive(store, os.urandom(PART + 5))
    partial._parts[0].result()  # the first part is in the store; the process "dies" now
    assert len(store._multipart_uploads(store.location.prefix)) == 1
    assert store.dir_exists(SESSION)
    now = datetime.now(UTC)
    assert store.abort_stale_uploads(now - timedelta(hours=1)) == 0  # too recent
    assert partial.path.exists()  # the dead process's scratch copy
    assert store.abort_stale_uploads(now + timedelta(minutes=1)) == 1
    assert store._multipart_uploads(store.location.prefix) == []
    assert not partial.path.exists()


def test_folders_are_removed_only_without_frames(store: S3RawStore) -> None:
    done = _receive(store, b"frame")
    done.finish()
    store.publish(done, "a.fit")
    receiving = _receive(store, os.urandom(PART + 1))
    receiving._parts[0].result()
    assert not store.remove_dir_if_empty(SESSION)  # a frame is there
    assert store.delete_files([f"{SESSION}/a.fit"]) == 1
    assert not store.remove_dir_if_empty(SESSION, keep_if_receiving=True)
    assert store.remove_dir_if_empty(SESSION)  # the abandoned upload goes with it
    assert _wait_until_no_uploads(store) == []
    assert not store.dir_exists(SESSION)
    receiving.discard()


def test_remove_dir_counts_frames_and_drops_everything(store: S3RawStore) -> None:
    for name in ("a.fit", "b.fit"):
        partial = _receive(store, name.encode())
        partial.finish()
        store.publish(partial, name)
    assert store.remove_dir(SESSION) == 2
    assert not store.dir_exists(SESSION)


def test_edit_file_rewrites_the_object(store: S3RawStore) -> None:
    partial = _receive(store, b"SITELAT = 48.1")
    partial.finish()
    relative = store.publish(partial, "a.fit")
    store.edit_file(
        relative, lambda path: path.write_bytes(path.read_bytes().replace(b"48", b"00"))
    )
    got = store.client.get_object(Bucket=store.location.bucket, Key=store.key(relative))
    assert got["Body"].read() == b"SITELAT = 00.1"


def test_presigned_download_needs_no_credentials_and_expires(store: S3RawStore) -> None:
    partial = _receive(store, b"raw bytes")
    partial.finish()
    relative = store.publish(partial, "a.fit")
    url = store.download_url(relative, "a.fit")
    assert url is not None
    reply = httpx.get(url)
    assert reply.status_code == 200 and reply.content == b"raw bytes"
    assert 'filename="a.fit"' in reply.headers["content-disposition"]
    tampered = url.replace("raws%2F", "raws%2Fx").replace("/raws/", "/raws/x", 1)
    assert httpx.get(tampered).status_code in (403, 404)


def test_paths_are_checked_and_there_is_no_local_path(store: S3RawStore) -> None:
    for bad in ("../x", "/etc/passwd", "a/../../b", "a\x00b", ""):
        with pytest.raises(UnsafePath):
            store.key(bad)
    with pytest.raises(NoLocalPath):
        store.resolve(SESSION)
    partial = _receive(store, b"x")
    partial.finish()
    for bad_name in ("../a.fit", ".hidden", "a/b.fit", ""):
        with pytest.raises(UnsafePath):
            store.publish(partial, bad_name)
    partial.discard()
    assert PARTIAL_PREFIX.startswith(".")
