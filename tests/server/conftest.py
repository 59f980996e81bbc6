"""An in-process app on each database backend, with a TestClient and the worker key."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from crowdsky.config import load_server_settings
from crowdsky.server import create_app
from crowdsky.server.state import ServerState
from crowdsky.testing import seed_jobs
from tests.db_backends import TestDatabase

WORKER_KEY = "k" * 64


@dataclass
class Api:
    """A running app: client, state, and helpers to put work in the queue."""

    client: TestClient
    state: ServerState
    headers: dict[str, str]

    def seed(self, n_jobs: int = 1, files_per_job: int = 3) -> list[int]:
        return seed_jobs(
            self.state.session_factory,
            self.state.raw_store,
            n_jobs=n_jobs,
            files_per_job=files_per_job,
        )

    def claim(self, worker_id: str = "w1") -> dict[str, object]:
        response = self.client.get(
            "/api/next_job.php", params={"worker_id": worker_id}, headers=self.headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body


@pytest.fixture
def api(test_db: TestDatabase, tmp_path: Path) -> Iterator[Api]:
    settings = load_server_settings(
        database_url=test_db.url,
        data_dir=tmp_path / "data",
        worker_api_key=WORKER_KEY,
        retry_backoff_seconds=0,
        cleanup_interval_seconds=0,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        yield Api(client, app.state.crowdsky, {"Authorization": f"Bearer {WORKER_KEY}"})
