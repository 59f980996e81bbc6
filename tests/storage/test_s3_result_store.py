"""Results on S3 (``storage/s3_result_store.py``), on a real SeaweedFS cluster."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from crowdsky.storage import ResultStore, s3_client
from crowdsky.storage.s3_result_store import S3ResultStore
from tests.support.seaweedfs import SeaweedCluster

FITS = "/crowdsky/stacks/user_1/M42/stack_20250115.78_83.6_+22.0_42.fits"


@pytest.fixture
def store(seaweedfs: SeaweedCluster, s3_bucket: str) -> S3ResultStore:
    client = seaweedfs.client()
    return S3ResultStore(
        client, s3_client.parse_s3_url(f"s3://{s3_bucket}/results"), part_bytes=5 * 1024 * 1024
    )


def _read(store: S3ResultStore, remote_path: str) -> bytes:
    reply = store.client.get_object(Bucket=store.location.bucket, Key=store.key(remote_path))
    return bytes(reply["Body"].read())


def test_upload_replace_and_delete(store: S3ResultStore, tmp_path: Path) -> None:
    assert isinstance(store, ResultStore)
    first = tmp_path / "a.fits"
    first.write_bytes(os.urandom(11 * 1024 * 1024))  # multipart: three parts
    seen: list[int] = []
    store.mkcol("/crowdsky/stacks/user_1/M42")
    assert store.upload_file(first, FITS, on_bytes=seen.append) == first.stat().st_size
    assert sum(seen) == first.stat().st_size
    assert _read(store, FITS) == first.read_bytes()
    second = tmp_path / "b.fits"
    second.write_bytes(b"retried job")
    store.upload_file(second, FITS)
    assert _read(store, FITS) == b"retried job"
    store.delete_files([FITS, FITS + ".missing"])
    with pytest.raises(Exception, match=r"NoSuchKey|Not Found|404"):
        _read(store, FITS)


def test_presigned_put_needs_no_credentials(store: S3ResultStore) -> None:
    url = store.presigned_put_url(FITS, 60)
    assert httpx.put(url, content=b"from a volunteer").status_code == 200
    assert _read(store, FITS) == b"from a volunteer"


def test_unsafe_paths_are_refused(store: S3ResultStore) -> None:
    for bad in ("/crowdsky/../etc", "", "/", "a/./b"):
        with pytest.raises(ValueError):
            store.key(bad)
