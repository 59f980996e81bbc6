"""The SeaweedFS test cluster: S3 works, objects are replicated on both volume servers."""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

from tests.support.seaweedfs import SeaweedCluster


def _volume_bytes(cluster: SeaweedCluster, index: int) -> int:
    folder = cluster.root / f"volume{index}"
    return sum(p.stat().st_size for p in folder.glob("*.dat"))


def test_put_get_list_on_real_cluster(seaweedfs: SeaweedCluster, s3_bucket: str) -> None:
    client: Any = seaweedfs.client()
    body = os.urandom(3 * 1024 * 1024 + 17)
    client.put_object(Bucket=s3_bucket, Key="a/b/frame.fit", Body=body)
    got = client.get_object(Bucket=s3_bucket, Key="a/b/frame.fit")["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()
    listed = client.list_objects_v2(Bucket=s3_bucket, Prefix="a/")
    assert [o["Key"] for o in listed["Contents"]] == ["a/b/frame.fit"]


def test_replicated_read_survives_a_stopped_volume_server(
    seaweedfs: SeaweedCluster, s3_bucket: str
) -> None:
    client: Any = seaweedfs.client()
    before = [_volume_bytes(seaweedfs, i) for i in range(2)]
    body = os.urandom(2 * 1024 * 1024)
    client.put_object(Bucket=s3_bucket, Key="replicated.bin", Body=body)
    after = [_volume_bytes(seaweedfs, i) for i in range(2)]
    # replication 001: both volume servers received the object
    assert all(a - b >= len(body) for a, b in zip(after, before, strict=True)), (before, after)
    seaweedfs.volumes[0].stop()
    try:
        started = time.monotonic()
        got = client.get_object(Bucket=s3_bucket, Key="replicated.bin")["Body"].read()
        assert got == body
        assert time.monotonic() - started < 30
    finally:
        seaweedfs.start_volume(0)  # later tests need both servers for replication 001
