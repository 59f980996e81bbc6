"""A minimal worker that speaks HTTP exactly as the original v1 worker does.

The original ``api_client.py`` (``worker-reference.md``, ``worker-api-reference.md``)
uses ``requests`` with ``Authorization: Bearer <WORKER_API_KEY>``: ``GET next_job.php``
(``worker_id``), ``GET job_files.php?job_id=``, ``GET download_raw.php?file_id=``
streamed to disk (``requests`` follows a redirect on GET, so a 307 to the object store
just works), then ``POST complete_job.php`` with the spec's metadata fields. It sends
no lease token. :meth:`V1Worker.heartbeat` is the one extension call (``heartbeat.php``,
``job_id`` only) that later workers of that generation added.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

TIMEOUT_S = 60


@dataclass
class V1Worker:
    """The original worker's HTTP calls against ``api_url`` (``.../api``)."""

    api_url: str
    worker_key: str
    worker_id: str = "v1-worker"
    #: (status of the first answer, final URL) of every download, for the caller to check
    downloads: list[tuple[int, str]] = field(default_factory=list)

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.worker_key}"}

    def get_next_job(self) -> dict[str, Any] | None:
        """``GET next_job.php``: the claimed job, or None on 204."""
        reply = requests.get(
            f"{self.api_url}/next_job.php",
            headers=self._headers,
            params={"worker_id": self.worker_id},
            timeout=TIMEOUT_S,
        )
        if reply.status_code == 204:
            return None
        reply.raise_for_status()
        job: dict[str, Any] = reply.json()
        return job

    def get_job_files(self, job_id: int) -> dict[str, Any]:
        """``GET job_files.php?job_id=``."""
        reply = requests.get(
            f"{self.api_url}/job_files.php",
            headers=self._headers,
            params={"job_id": job_id},
            timeout=TIMEOUT_S,
        )
        reply.raise_for_status()
        listing: dict[str, Any] = reply.json()
        return listing

    def download_raw_file(self, file_id: int, local_path: Path) -> str:
        """``GET download_raw.php?file_id=`` streamed to ``local_path``; its SHA-256."""
        local_path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with requests.get(
            f"{self.api_url}/download_raw.php",
            headers=self._headers,
            params={"file_id": file_id},
            stream=True,
            timeout=TIMEOUT_S,
        ) as reply:
            reply.raise_for_status()
            first = reply.history[0].status_code if reply.history else reply.status_code
            self.downloads.append((first, reply.url))
            with open(local_path, "wb") as fh:
                for chunk in reply.iter_content(1024 * 1024):
                    fh.write(chunk)
                    digest.update(chunk)
        return digest.hexdigest()

    def heartbeat(self, job_id: int) -> dict[str, Any]:
        """``POST heartbeat.php`` with the job id only (the extension's minimum)."""
        reply = requests.post(
            f"{self.api_url}/heartbeat.php",
            headers=self._headers,
            json={"job_id": job_id},
            timeout=TIMEOUT_S,
        )
        reply.raise_for_status()
        body: dict[str, Any] = reply.json()
        return body

    def complete_job(self, job_id: int, metadata: dict[str, Any]) -> requests.Response:
        """``POST complete_job.php`` with ``job_id`` and the metadata (the raw answer)."""
        return requests.post(
            f"{self.api_url}/complete_job.php",
            headers=self._headers,
            json={"job_id": job_id, **metadata},
            timeout=TIMEOUT_S,
        )


def spec_metadata(ucloud_path: str, n_frames: int, file_size_bytes: int) -> dict[str, Any]:
    """The spec's complete_job fields, as the v1 worker fills them (naive UTC dates)."""
    return {
        "ucloud_path": ucloud_path,
        "thumbnail_path": ucloud_path.removesuffix(".fits") + "_thumb.png",
        "n_frames_input": n_frames,
        "n_frames_aligned": n_frames,
        "total_exptime": 10.0 * n_frames,
        "date_obs_start": "2025-03-27T02:00:05",
        "date_obs_end": "2025-03-27T02:01:05",
        "ra_deg": 83.633,
        "dec_deg": 22.014,
        "file_size_bytes": file_size_bytes,
        "n_stars_detected": 42,
    }
