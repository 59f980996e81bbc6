"""What one server process holds for its lifetime: settings, engine, sessions, stores."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from crowdsky.config import ServerSettings
from crowdsky.queue import reap_expired_leases
from crowdsky.storage.raw_store import RawStore
from crowdsky.storage.result_reader import ResultReader
from crowdsky.storage.s3_result_store import S3ResultStore

#: Claims reap expired leases at most this often per process (seconds).
REAP_INTERVAL_S = 2.0


@dataclass
class ServerState:
    """Long-lived objects of one server process, built in the app's lifespan."""

    settings: ServerSettings
    engine: Engine
    session_factory: sessionmaker[Session]
    raw_store: RawStore
    #: Where downloads read finished stacks (``CROWDSKY_RESULT_STORE``).
    result_reader: ResultReader
    #: Where workers publish results by presigned PUT (``CROWDSKY_RESULT_STORE``), if set.
    result_store: S3ResultStore | None = None
    #: Bounds the claims in flight in this process (created in the lifespan's loop).
    claim_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    _reap_lock: threading.Lock = field(default_factory=threading.Lock)
    _last_reap: float = 0.0

    def maybe_reap(self, now: datetime) -> None:
        """Return expired leases to the queue, throttled so claims stay cheap."""
        if time.monotonic() - self._last_reap < REAP_INTERVAL_S:
            return
        if not self._reap_lock.acquire(blocking=False):
            return  # another request thread is reaping right now
        try:
            with self.session_factory() as session:
                reap_expired_leases(
                    session, now, backoff_seconds=self.settings.retry_backoff_seconds
                )
            self._last_reap = time.monotonic()
        finally:
            self._reap_lock.release()
