"""One slot, one stack, end to end: a real server and a real worker process.

5 frames of a run are uploaded and stacked; 6 more of the same run are uploaded
later. The second job re-stacks the 11 frames (still in the raw buffer: the
re-stack window is open) and its stack replaces the first in ``my_stacks``.
Slow (about 95 s at load 12): one server and two worker runs, as a user would see
it; the same cases on every backend run in seconds in tests/ingest/test_slots.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from crowdsky.simulate import SequenceSpec, simulate_sequence
from tests.e2e.conftest import (
    PASSWORD,
    USERNAME,
    Deployment,
    WorkerLauncher,
    start_deployment,
)
from tests.support.webdav_server import WebDavServer

pytestmark = pytest.mark.slow
SMALL_FRAMES = (270, 480)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """A server that keeps a completed stack's raws for a day."""
    d = start_deployment(tmp_path, {"CROWDSKY_RESTACK_WINDOW_HOURS": "24"})
    yield d
    d.server.stop()


def _my_stacks(deployment: Deployment) -> list[dict[str, object]]:
    reply = httpx.get(
        f"{deployment.server.url}/api/my_stacks.php", auth=(USERNAME, PASSWORD), timeout=30
    )
    reply.raise_for_status()
    stacks: list[dict[str, object]] = reply.json()
    return stacks


def test_five_then_six_frames_end_as_one_stack_of_eleven(
    deployment: Deployment, share: WebDavServer, workers: WorkerLauncher, tmp_path: Path
) -> None:
    simulate_sequence(tmp_path / "run", SequenceSpec(n_frames=11, seed=5, shape=SMALL_FRAMES))
    frames = sorted((tmp_path / "run").glob("*.fit"))
    (first,) = deployment.upload(frames[:5])
    assert workers.run_once("e2e-slot").process.returncode == 0
    assert [s["n_frames_input"] for s in _my_stacks(deployment)] == [5]
    (second,) = deployment.upload(frames[5:])
    assert second != first
    assert deployment.upload(frames[:5]) == [], "the same files again add nothing"
    assert workers.run_once("e2e-slot").process.returncode == 0
    (stack,) = _my_stacks(deployment)
    assert stack["n_frames_input"] == 11
    row = deployment.job(second)
    assert row["status"] == "completed" and row["stacked"]["id"] == stack["id"]
    assert deployment.job(first)["stacked"] is None, "the first stack was replaced"
    assert row["chunk_key"] == deployment.job(first)["chunk_key"] == stack["chunk_key"]
