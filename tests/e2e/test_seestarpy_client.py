"""The real client, unmodified: seestarpy 0.7.1's ``crowdsky.server`` against a server process.

seestarpy is installed from PyPI into its own virtual environment (cached in pytest's
cache folder) whose ``sitecustomize`` refuses every non-loopback connect, send and
name lookup, because importing seestarpy broadcasts a telescope discovery probe.
Without a package index the test skips (fails under CROWDSKY_REQUIRE_ALL_BACKENDS=1).
The stack ``upload_stack`` sends is made by our engine from the real frames of
``../shared/data`` (once per test session; skipped when the frames are absent) and
saved as its interchange cube, a primary-HDU RGB cube like the Seestar's own stacks.
The post-processing job is run here with the worker's own step
(``worker.postprocess``) and completed through the queue, as a worker would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from crowdsky import queue, retention
from crowdsky.accounts import create_user
from crowdsky.db import create_db_engine, make_session_factory
from crowdsky.db.types import utcnow
from crowdsky.ingest.chunking import chunk_key
from crowdsky.storage.result_paths import result_paths
from crowdsky.storage.result_store import LocalResultStore
from crowdsky.worker.postprocess import normalise_stack
from tests.db_backends import require_all_backends
from tests.ingest.fits_factory import write_sequence
from tests.server.test_client_api import write_seestar_stack
from tests.support.live_server import start_live_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
HERE = Path(__file__).parent / "seestarpy"
SPEC = "seestarpy==0.7.1"
PASSWORD = "correct horse battery"
#: Real frames stacked for the upload: enough for a real stack, few enough to be quick.
REAL_STACK_FRAMES = 8


@dataclass(frozen=True)
class RealStack:
    """A stack our engine made of real frames, as the file the app would upload."""

    path: Path
    n_frames: int
    object_name: str
    date_obs: str
    ra_deg: float
    dec_deg: float


@pytest.fixture(scope="session")
def real_stack(real_frames: list[Path], tmp_path_factory: pytest.TempPathFactory) -> RealStack:
    """Built once per test session: ``stack_files`` on the first real frames, exported
    as the interchange cube (``interchange.write_export``)."""
    from astropy.io import fits

    from crowdsky.stacking import stack_files
    from crowdsky.stacking.interchange import write_export

    folder = tmp_path_factory.mktemp("real-stack")
    product = folder / "product.fits"
    result = stack_files(real_frames[:REAL_STACK_FRAMES], product)
    assert result.n_aligned == REAL_STACK_FRAMES
    cube = write_export(product, folder / "cube.fits", "cube")
    header = fits.getheader(cube)
    name = f"CrowdSky_{result.n_aligned}_{header['OBJECT']}_10.0s_{header['FILTER']}_upload.fit"
    path = cube.rename(folder / name)
    return RealStack(
        path,
        result.n_aligned,
        str(header["OBJECT"]),
        str(header["DATE-OBS"]),
        float(header["RA"]),
        float(header["DEC"]),
    )


def seestarpy_python(cache_dir: Path) -> Path:
    venv = cache_dir / "venv"
    python = venv / "bin" / "python"
    if not (venv / ".installed").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", SPEC], capture_output=True, text=True
        )
        if done.returncode != 0:
            message = f"cannot install {SPEC}: {done.stderr.strip()[-300:]}"
            if require_all_backends():
                pytest.fail(message)
            pytest.skip(message)
        (venv / ".installed").write_text(SPEC)
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    shutil.copyfile(HERE / "sitecustomize.py", Path(site) / "sitecustomize.py")
    return python


def run_client(python: Path, request: dict[str, Any]) -> dict[str, Any]:
    env = {"PATH": os.environ.get("PATH", ""), "TZ": "UTC", "HOME": str(request["home"])}
    done = subprocess.run(
        [str(python), "-I", str(HERE / "client_run.py"), json.dumps(request, default=str)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_seestarpy_client_against_a_server_process(
    tmp_path: Path, pytestconfig: pytest.Config, real_stack: RealStack
) -> None:
    python = seestarpy_python(Path(pytestconfig.cache.mkdir("seestarpy-0.7.1")))
    data_dir = tmp_path / "server"
    server = start_live_server(data_dir)
    try:
        url = f"sqlite:///{(data_dir / 'crowdsky.sqlite3').resolve()}"
        engine = create_db_engine(url)
        sessions = make_session_factory(engine)
        with sessions() as session:
            create_user(
                session, utcnow(), username="alice", email="alice@example.org", password=PASSWORD
            )
        stack = real_stack.path
        raws = write_sequence(tmp_path / "raws", 4)
        positions = [
            (real_stack.date_obs, real_stack.ra_deg, real_stack.dec_deg),
            ("2025-01-15T19:32:10", 83.6, 22.0),
            ("2025-02-01T23:59:59", 359.97, -0.03),
            ("2025-03-27T01:00:00", 0.0, 89.99),
            ("2025-03-27T01:00:00", 100.0, -89.95),
            ("2025-03-27T01:00:00", 45.0, 41.8103149),
        ]
        base = {"base_url": server.url, "username": "alice", "password": PASSWORD}
        base["home"] = str(tmp_path)
        first = run_client(
            python,
            {**base, "step": "first", "stack": str(stack), "raws": [str(p) for p in raws],
             "positions": positions, "n_frames": real_stack.n_frames},
        )  # fmt: skip
        assert "401" in first["bad_login"] and first["empty"] == []
        upload = first["upload"]
        assert upload["ok"] is True and upload["status"] == "queued"
        assert upload["chunk_key"] == first["keys"][0]  # byte-identical to seestarpy's key
        ours = [
            chunk_key(datetime.fromisoformat(t + "+00:00"), ra, dec) for t, ra, dec in positions
        ]
        assert ours == first["keys"]
        assert all(f["ok"] and f["chunk_key"] for f in first["raw_files"])
        assert first["finalize"]["jobs"] == 1 and first["finalize"]["skipped"] == []

        # the worker's post-processing step, then completion through the queue
        results = LocalResultStore(data_dir / "results")
        with sessions() as session:
            claimed = None
            for _ in range(2):
                job = queue.claim_next_job(session, utcnow(), worker_id="w", lease_seconds=60)
                if job is not None and job.kind == "postprocess":
                    claimed = job
            assert claimed is not None
            (entry,) = queue.list_job_files(session, job_id=claimed.job_id).files
            paths = result_paths(
                "/crowdsky", claimed.user_id, real_stack.object_name, claimed.chunk_key,
                claimed.job_id,
            )  # fmt: skip
            out = results.path_for(paths.fits)
            out.parent.mkdir(parents=True, exist_ok=True)
            done = normalise_stack([server_raw(data_dir, entry.storage_path)], out)
            outcome = queue.complete_job(
                session,
                utcnow(),
                queue.Completion(
                    job_id=claimed.job_id,
                    ucloud_path=paths.fits,
                    n_frames_input=done.n_frames_input,
                    n_frames_aligned=done.n_aligned,
                    total_exptime=done.total_exptime,
                    date_obs_start=done.date_obs_start,
                    date_obs_end=done.date_obs_end,
                    ra_deg=done.ra_deg,
                    dec_deg=done.dec_deg,
                    file_size_bytes=out.stat().st_size,
                    n_stars_detected=done.n_stars_detected,
                ),
                worker_id="w",
                lease_token=claimed.lease_token,
            )
            assert outcome.freed is not None
            retention.delete_freed(session, _raw_store(data_dir), outcome.freed)
        engine.dispose()

        # a folder as the app keeps it: the uploaded stack and a new one
        folder = tmp_path / "local"
        folder.mkdir()
        local_name = f"CrowdSky_{real_stack.n_frames}_{real_stack.object_name}_10.0s_IRCUT"
        shutil.copyfile(stack, folder / f"{local_name}_{upload['chunk_key']}.fit")
        other = write_seestar_stack(tmp_path / "other.fit", ra=10.0, dec=41.0)
        new_key = chunk_key(datetime.fromisoformat("2026-02-27T22:30:05+00:00"), 10.0, 41.0)
        shutil.copyfile(other, folder / f"CrowdSky_38_M 31_10.0s_LP_{new_key}.fit")
        second = run_client(
            python,
            {**base, "step": "second", "keys": [upload["chunk_key"]],
             "object": real_stack.object_name, "dest": str(tmp_path / "down"),
             "local_dir": str(folder)},
        )  # fmt: skip
        (item,) = second["stacks"]
        assert (
            item["chunk_key"] == upload["chunk_key"]
            and item["object_name"] == real_stack.object_name
        )
        assert item["n_frames_input"] == real_stack.n_frames
        assert isinstance(item["telescope_id"], int) and item["filter_name"] == "IRCUT"
        assert second["by_object"] == second["stacks"]
        (downloaded,) = second["downloaded"]
        assert Path(downloaded).name == Path(paths.fits).name
        assert Path(downloaded).read_bytes() == out.read_bytes()
        sync = second["sync"]
        assert sync["files_skipped"] == 1 and sync["files_uploaded"] == 1, sync
        assert sync["files_failed"] == 0
    finally:
        server.stop()


def server_raw(data_dir: Path, storage_path: str) -> Path:
    return _raw_store(data_dir).resolve(storage_path)


def _raw_store(data_dir: Path) -> Any:
    from crowdsky.storage.raw_store import RawStore

    return RawStore(data_dir / "uploads")
