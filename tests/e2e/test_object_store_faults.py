"""Faults on PostgreSQL + SeaweedFS S3 with real server and worker processes: nothing lost.

Each test breaks one part of a multi-server deployment while work is in flight and then
checks the same invariants (:func:`_assert_nothing_lost`): every file a server
acknowledged is in the store with the SHA-256 it answered, no other raw row or object
exists (no half-written upload, no staging object, no unfinished multipart upload after
cleanup), and each job completed exactly once with one stack.

- an API server SIGKILLed mid-upload (the client sends the file again to another
  server) and another one SIGKILLed after committing a claim whose answer the client
  never read (the lease expires, another server's reaper hands the job back, a worker
  through a third server completes it);
- one of the two volume servers stopped between raw downloads of a claimed job
  (replication ``001``: every chunk is on both, so reads continue) and a worker
  stacking that job while it is still down;
- the S3 gateway down when a worker starts its job and started again: the failed
  attempt is retried and the job completes.
"""

from __future__ import annotations

import base64
import hashlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from crowdsky.db import create_db_engine, make_session_factory, upgrade_database
from crowdsky.db.models import JobAttempt, RawFile, StackedFrame, StackingJob
from crowdsky.simulate import SequenceSpec, simulate_sequence
from crowdsky.storage import s3_client
from crowdsky.storage.s3_raw_store import S3RawStore
from tests.db_backends import create_server_database, drop_server_database
from tests.e2e.conftest import PASSWORD, USERNAME, Deployment, WorkerLauncher, wait_until
from tests.support.live_server import LiveServer, start_live_server
from tests.support.seaweedfs import SeaweedCluster
from tests.support.webdav_server import WebDavServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: Small frames for the download faults; the upload fault needs frames above one part.
SMALL = (270, 480)
#: 1,600 x 2,700 16-bit pixels: 8.6 MB, more than one 8 MiB multipart part.
LARGE = (1600, 2700)
PART_BYTES = 8 * 1024 * 1024
LEASE_SECONDS = 4
UPLOAD = "/api/raw_upload.php"


@dataclass
class Cluster:
    """API servers on one PostgreSQL database and one bucket of the SeaweedFS cluster."""

    servers: list[LiveServer]
    database_url: str
    bucket: str
    seaweed: SeaweedCluster
    root: Path

    def s3(self) -> Any:
        return self.seaweed.client()

    def objects(self) -> dict[str, bytes]:
        """Every object under the raw prefix and its bytes."""
        client = self.s3()
        listed = client.list_objects_v2(Bucket=self.bucket, Prefix="raws/")
        return {
            o["Key"]: client.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read()
            for o in listed.get("Contents", [])
        }

    def multipart_uploads(self) -> list[str]:
        listed = self.s3().list_multipart_uploads(Bucket=self.bucket, Prefix="raws/")
        return [u["Key"] for u in listed.get("Uploads", [])]

    def deployment(self, server: LiveServer) -> Deployment:
        return Deployment(server, self.database_url, self.root)

    def raw_store(self, server: LiveServer) -> S3RawStore:
        """The raw store as ``server`` opens it (cleanup's view of the bucket)."""
        env = server.env
        options = s3_client.S3Options(
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region=env["AWS_DEFAULT_REGION"],
            access_key_id=env["AWS_ACCESS_KEY_ID"],
            secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        return S3RawStore(
            s3_client.make_client(options),
            s3_client.parse_s3_url(env["CROWDSKY_RAW_STORE"]),
            server.data_dir / "s3-staging",
        )


def _start_cluster(
    root: Path, seaweed: SeaweedCluster, bucket: str, url: str, count: int
) -> list[LiveServer]:
    env = {
        **seaweed.s3_env(),
        "CROWDSKY_RAW_STORE": f"s3://{bucket}/raws",
        "CROWDSKY_RETRY_BACKOFF_SECONDS": "1",
        "CROWDSKY_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
        "CROWDSKY_CLEANUP_INTERVAL_SECONDS": "0",
    }
    key = "faults-e2e-worker-key-" + "k" * 24
    servers: list[LiveServer] = []
    try:
        for index in range(count):
            servers.append(
                start_live_server(
                    root / f"server-{index}", database_url=url, worker_key=key, extra_env=env
                )
            )
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


@pytest.fixture
def cluster(
    request: pytest.FixtureRequest, tmp_path: Path, seaweedfs: SeaweedCluster, s3_bucket: str
) -> Iterator[Cluster]:
    """``request.param`` (default 1) API server processes, a user and a fresh bucket."""
    count = int(getattr(request, "param", 1))
    url, admin = create_server_database("postgresql")
    servers: list[LiveServer] = []
    try:
        upgrade_database(url)
        servers = _start_cluster(tmp_path, seaweedfs, s3_bucket, url, count)
        built = Cluster(servers, url, s3_bucket, seaweedfs, tmp_path)
        built.deployment(servers[0]).create_user()
        yield built
    finally:
        for server in servers:
            server.stop()
        drop_server_database(url, admin)


def _frames(root: Path, count: int, shape: tuple[int, int], seed: int) -> list[Path]:
    out = root / f"frames-{seed}"
    start = datetime(2025, 3, 27, 2, 0, 5, tzinfo=UTC) + timedelta(minutes=seed % 4 * 15)
    simulate_sequence(out, SequenceSpec(n_frames=count, seed=seed, shape=shape, start=start))
    return sorted(out.glob("*.fit"))


def _user(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=(USERNAME, PASSWORD), timeout=120)


def _send(client: httpx.Client, token: str, path: Path) -> str:
    """Upload one file; the SHA-256 the server acknowledged (checked against the bytes)."""
    reply = client.post(
        UPLOAD,
        params={"action": "file"},
        data={"session_token": token},
        files={"file": (path.name, path.read_bytes(), "application/octet-stream")},
    )
    assert reply.status_code == 200, reply.text
    digest = str(reply.json()["sha256"])
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def _start_session(server: LiveServer) -> str:
    with _user(server) as client:
        reply = client.post(UPLOAD, params={"action": "start"})
        assert reply.status_code == 200, reply.text
        return str(reply.json()["session_token"])


def _finalize(server: LiveServer, token: str) -> list[int]:
    with _user(server) as client:
        done = client.post(UPLOAD, params={"action": "finalize"}, data={"session_token": token})
        assert done.status_code == 200, done.text
        return [int(j) for j in done.json()["job_ids"]]


def _upload(server: LiveServer, frames: list[Path]) -> tuple[list[int], dict[str, str]]:
    token = _start_session(server)
    with _user(server) as client:
        acknowledged = {path.name: _send(client, token, path) for path in frames}
    return _finalize(server, token), acknowledged


def _open_upload_and_stall(server: LiveServer, token: str, path: Path, sent: int) -> socket.socket:
    """Send the headers and the first ``sent`` bytes of a file upload, then stop sending."""
    boundary = "crowdskyfaultboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="session_token"\r\n\r\n{token}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    body = path.read_bytes()
    assert sent < len(body), "the stalled upload must stop short of the file's end"
    auth = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    request = (
        f"POST {UPLOAD}?action=file HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Basic {auth}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(head) + len(body) + len(tail)}\r\n\r\n"
    ).encode()
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(request + head + body[:sent])
    return sock


def _rows(
    database_url: str,
) -> tuple[list[RawFile], list[StackingJob], list[StackedFrame], list[JobAttempt]]:
    engine = create_db_engine(database_url)
    try:
        with make_session_factory(engine)() as session, session.begin():
            out = tuple(
                list(session.execute(select(model)).scalars())
                for model in (RawFile, StackingJob, StackedFrame, JobAttempt)
            )
            session.expunge_all()
            return out  # type: ignore[return-value]
    finally:
        engine.dispose()


def _assert_stored(cluster: Cluster, acknowledged: dict[str, str]) -> None:
    """Exactly the acknowledged files are rows and objects, each object with its hash."""
    raws, _jobs, _stacks, _attempts = _rows(cluster.database_url)
    assert sorted(r.filename for r in raws) == sorted(acknowledged)
    objects = cluster.objects()
    assert sorted(objects) == sorted(f"raws/{r.storage_path}" for r in raws), "stray objects"
    for raw in raws:
        assert raw.sha256 == acknowledged[raw.filename]
        assert hashlib.sha256(objects[f"raws/{raw.storage_path}"]).hexdigest() == raw.sha256
        assert raw.stacking_job_id is not None and not raw.is_deleted


def _assert_completed_once(cluster: Cluster, job_ids: list[int], frames: int) -> list[JobAttempt]:
    """Every job completed with one stack and one completed attempt; no other jobs."""
    _raws, jobs, stacks, attempts = _rows(cluster.database_url)
    assert sorted(j.id for j in jobs) == sorted(job_ids)
    assert all(j.status == "completed" for j in jobs), [(j.id, j.status) for j in jobs]
    assert sorted(s.stacking_job_id for s in stacks) == sorted(job_ids)
    assert all(s.n_frames_input == frames for s in stacks)
    completed = [a.stacking_job_id for a in attempts if a.outcome == "completed"]
    assert sorted(completed) == sorted(job_ids)
    return attempts


def _run_worker(
    cluster: Cluster, server: LiveServer, share: WebDavServer, name: str, job_ids: list[int]
) -> None:
    """A worker daemon through ``server`` until every job is completed."""
    launcher = WorkerLauncher(cluster.deployment(server), share, cluster.root)
    worker = launcher.start(name, HEARTBEAT_INTERVAL="1")
    try:
        worker.wait_for(
            lambda: all(j.status == "completed" for j in _rows(cluster.database_url)[1]),
            timeout=120,
            what=f"jobs {job_ids} to complete",
        )
    finally:
        launcher.stop_all()


@pytest.mark.parametrize("cluster", [3], indirect=True)
def test_servers_killed_mid_upload_and_mid_claim_lose_nothing(
    cluster: Cluster, share: WebDavServer
) -> None:
    first, second, third = cluster.servers
    frames = _frames(cluster.root, 3, LARGE, seed=21)
    token = _start_session(first)
    with _user(first) as client:
        acknowledged = {frames[0].name: _send(client, token, frames[0])}

    # the second file is cut off on the first server once a part is in the store
    stalled = _open_upload_and_stall(first, token, frames[1], PART_BYTES + 64 * 1024)
    try:
        wait_until(cluster.multipart_uploads, 30, "the first multipart part in the store")
        first.kill()
    finally:
        stalled.close()
    # the client sends it (and the rest) again, to the other servers
    with _user(second) as b, _user(third) as c:
        acknowledged[frames[1].name] = _send(b, token, frames[1])
        acknowledged[frames[2].name] = _send(c, token, frames[2])
    job_ids = _finalize(second, token)
    assert len(job_ids) == 1
    # the killed request's multipart upload is all that is left of it; cleanup aborts it
    assert len(cluster.multipart_uploads()) == 1
    store = cluster.raw_store(second)
    try:
        assert store.abort_stale_uploads(datetime.now(UTC) + timedelta(seconds=1)) == 1
    finally:
        store.close()
    assert cluster.multipart_uploads() == []
    _assert_stored(cluster, acknowledged)

    # the second server commits a claim and dies before its client reads the answer
    key = second.worker_key
    host, port = second.url.removeprefix("http://").split(":")
    claim = socket.create_connection((host, int(port)), timeout=30)
    claim.sendall(
        f"GET /api/next_job.php?worker_id=doomed HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {key}\r\n\r\n".encode()
    )
    try:
        wait_until(
            lambda: any(j.worker_id == "doomed" for j in _rows(cluster.database_url)[1]),
            10,
            "the claim to be committed",
        )
        second.kill()
    finally:
        claim.close()

    # a worker through the third server waits out the lease and completes the job
    _run_worker(cluster, third, share, "survivor", job_ids)
    attempts = _assert_completed_once(cluster, job_ids, frames=3)
    assert [(a.worker_id, a.outcome) for a in attempts] == [
        ("doomed", "lease_expired"),
        ("survivor", "completed"),
    ]
    assert cluster.objects() == {}, "the completed job's raws were deleted from the store"


def _claim(server: LiveServer, worker_id: str) -> dict[str, Any]:
    with server.client() as client:
        reply = client.get("/api/next_job.php", params={"worker_id": worker_id})
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def _one_small_job(cluster: Cluster, seed: int) -> tuple[LiveServer, list[int], dict[str, str]]:
    """Four small frames uploaded through the only server, checked in the store: one job."""
    (server,) = cluster.servers
    job_ids, acknowledged = _upload(server, _frames(cluster.root, 4, SMALL, seed=seed))
    _assert_stored(cluster, acknowledged)
    return server, job_ids, acknowledged


def _download(server: LiveServer, file_id: int) -> bytes:
    """Fetch one raw the way workers do: the 307 to the store, followed."""
    with server.client(follow_redirects=True) as client:
        reply = client.get("/api/download_raw.php", params={"file_id": file_id})
    assert reply.status_code == 200, reply.text
    assert reply.history and reply.history[0].status_code == 307
    return reply.content


def test_a_stopped_volume_server_does_not_stop_raw_downloads(
    cluster: Cluster, share: WebDavServer
) -> None:
    server, job_ids, acknowledged = _one_small_job(cluster, seed=31)
    claimed = _claim(server, "reader")
    identity = {"worker_id": "reader", "lease_token": claimed["lease_token"]}
    with server.client() as client:
        listing = client.get("/api/job_files.php", params={"job_id": claimed["job_id"], **identity})
    files = listing.json()["files"]
    assert len(files) == 4
    got = {files[0]["filename"]: _download(server, int(files[0]["id"]))}
    cluster.seaweed.volumes[0].stop()
    try:
        # every chunk has a replica on the other volume server: reads go on
        for entry in files[1:]:
            got[entry["filename"]] = _download(server, int(entry["id"]))
        assert {n: hashlib.sha256(b).hexdigest() for n, b in got.items()} == acknowledged
        with server.client() as client:
            back = client.post(
                "/api/release_job.php", json={"job_id": claimed["job_id"], **identity}
            )
        assert back.status_code == 200, back.text
        # a real worker downloads and stacks the same job with the volume server still down
        _run_worker(cluster, server, share, "stacker", job_ids)
    finally:
        cluster.seaweed.start_volume(0)
    attempts = _assert_completed_once(cluster, job_ids, frames=4)
    assert [(a.worker_id, a.outcome) for a in attempts] == [
        ("reader", "released"),
        ("stacker", "completed"),
    ]


def test_the_s3_gateway_restarted_during_a_job_is_retried_and_completes(
    cluster: Cluster, share: WebDavServer
) -> None:
    server, job_ids, _acknowledged = _one_small_job(cluster, seed=41)
    launcher = WorkerLauncher(cluster.deployment(server), share, cluster.root)
    cluster.seaweed.gateway.stop()
    try:
        worker = launcher.start("patient", HEARTBEAT_INTERVAL="1")
        # the worker claims, cannot fetch its raws and reports the attempt failed
        worker.wait_for(
            lambda: any(a.outcome == "failed" for a in _rows(cluster.database_url)[3]),
            timeout=90,
            what="an attempt to fail while the S3 gateway is down",
        )
        cluster.seaweed.start_gateway()
        worker.wait_for(
            lambda: all(j.status == "completed" for j in _rows(cluster.database_url)[1]),
            timeout=90,
            what="the job to complete once the gateway is back",
        )
    finally:
        launcher.stop_all()
        if not cluster.seaweed.gateway.alive():
            cluster.seaweed.start_gateway()
    attempts = _assert_completed_once(cluster, job_ids, frames=4)
    history = [(a.outcome, a.error_message) for a in sorted(attempts, key=lambda a: a.attempt)]
    assert history[0][0] == "failed" and history[-1][0] == "completed", history
    assert cluster.objects() == {}, "the completed job's raws were deleted from the store"
