"""Cheap ways to take a server down, tried against a real server process.

A flood of wrong Basic passwords (memory flat, ``/healthz`` answering), a gzip bomb
posing as a FITS upload (refused from its first bytes), and bodies announced or sent
larger than the limit (refused before they are read).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from crowdsky.accounts import create_api_key, create_user
from crowdsky.db import create_db_engine, make_session_factory
from crowdsky.db.types import utcnow
from tests.support.live_server import LiveServer, start_live_server

pytestmark = [pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
ANNOUNCED_BYTES = 2 * 10**9


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = start_live_server(
        tmp_path / "data", extra_env={"CROWDSKY_CLEANUP_INTERVAL_SECONDS": "0"}
    )
    yield live
    live.stop()


def _api_key(server: LiveServer) -> str:
    engine = create_db_engine(f"sqlite:///{(server.data_dir / 'crowdsky.sqlite3').resolve()}")
    try:
        with make_session_factory(engine)() as session:
            create_user(
                session, utcnow(), username="bomber", email="b@example.org", password="x" * 12
            )
        with make_session_factory(engine)() as session:
            return create_api_key(session, utcnow(), username="bomber", name="t").key
    finally:
        engine.dispose()


def _gzip_bomb(path: Path, expanded_bytes: int) -> None:
    """A gzip file holding a FITS header announcing ``expanded_bytes`` of zeros."""
    cards = [
        "SIMPLE  =                    T",
        "BITPIX  =                    8",
        "NAXIS   =                    2",
        f"NAXIS1  = {1024:20d}",
        f"NAXIS2  = {expanded_bytes // 1024:20d}",
        "END",
    ]
    header = "".join(card.ljust(80) for card in cards).ljust(2880).encode()
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip container
    zeros = bytes(16 * 2**20)
    with path.open("wb") as fh:
        fh.write(packer.compress(header))
        for _ in range(expanded_bytes // len(zeros)):
            fh.write(packer.compress(zeros))
        fh.write(packer.flush())


def _cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def test_a_gzip_bomb_is_refused_from_its_first_bytes(server: LiveServer, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.fit"
    _gzip_bomb(bomb, 2**30)  # 1 GiB of zeros in about 1 MB
    assert bomb.stat().st_size < 2 * 2**20
    headers = {"Authorization": f"Bearer {_api_key(server)}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        token = client.post("/api/raw_upload.php", params={"action": "start"}).json()
        before = _cpu_seconds(server.process.pid)
        with bomb.open("rb") as fh:
            reply = client.post(
                "/api/raw_upload.php",
                params={"action": "file"},
                data={"session_token": token["session_token"]},
                files={"file": ("bomb.fit", fh, "application/octet-stream")},
            )
        spent = _cpu_seconds(server.process.pid) - before
    assert reply.status_code == 400, reply.text
    assert "gzip-compressed files are not accepted" in reply.json()["error"]
    # receiving, hashing and refusing 1 MB; decompressing would take seconds
    assert spent < 0.05, f"the server spent {spent:.3f} CPU-seconds on the bomb"


def _announce(server: LiveServer, method: str, path: str, extra: str = "") -> tuple[bytes, int]:
    """Send only the headers of a 2 GB body; the server's answer and the bytes of body sent."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            (
                f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {ANNOUNCED_BYTES}\r\n"
                f"{extra}\r\n"
            ).encode()
        )
        answer = sock.recv(65536)
    return answer, 0


def test_an_announced_2_gb_body_is_refused_unread_on_every_endpoint(server: LiveServer) -> None:
    document = httpx.get(f"{server.url}/openapi.json").json()
    auth = f"Authorization: Bearer {server.worker_key}\r\n"
    tried = 0
    for path, operations in document["paths"].items():
        for method in operations:
            answer, body_sent = _announce(server, method.upper(), path, auth)
            assert answer.startswith(b"HTTP/1.1 413"), (method, path, answer[:200])
            assert body_sent < 2**20
            tried += 1
    assert tried >= 10


def test_a_chunked_body_is_cut_at_the_limit(server: LiveServer) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(64):  # 4 MiB of JSON-ish bytes, no Content-Length
            yield b" " * 65536

    reply = httpx.post(
        f"{server.url}/api/complete_job.php",
        content=chunks(),
        headers={**server.worker_headers, "Content-Type": "application/json"},
        timeout=30,
    )
    assert reply.status_code == 413, reply.text


@pytest.mark.slow
def test_a_login_flood_keeps_memory_flat_and_health_answering() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_login_flood.py"), "--seconds", "15", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    assert figures["rss_growth_mb"] < 100, figures
    assert figures["healthz_p99_ms"] < 200, figures
    assert int(figures["answers"].get("429", 0)) > 0, figures  # the throttle engaged
