"""The login throttles: ``accounts/throttle.py`` (memory) and ``accounts/db_throttle.py``."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from crowdsky.accounts.db_throttle import DatabaseLoginThrottle
from crowdsky.accounts.throttle import LoginThrottle, MemoryLoginThrottle
from crowdsky.db.models import LoginFailure
from tests.db_backends import TestDatabase

LIMITS = {"failures_per_account": 2, "failures_per_address": 3, "window_seconds": 60.0}


def _database_throttle(db: TestDatabase, **limits: float) -> DatabaseLoginThrottle:
    return DatabaseLoginThrottle(db.session_factory, **{**LIMITS, **limits})  # type: ignore[arg-type]


def _rows(db: TestDatabase) -> int:
    with db.session_factory() as session, session.begin():
        return session.execute(select(func.count()).select_from(LoginFailure)).scalar_one()


def _check_counts_per_account_and_per_address(throttle: LoginThrottle) -> None:
    assert throttle.acquire("Alice", "10.0.0.1", 0.0) == 0
    assert throttle.acquire("alice", "10.0.0.2", 1.0) == 0
    # the account has used its two attempts (names compare case-blind)
    assert throttle.acquire("ALICE", "10.0.0.9", 2.0) == pytest.approx(58.0)
    assert throttle.acquire("bob", "10.0.0.1", 2.0) == 0
    assert throttle.acquire("carol", "10.0.0.1", 3.0) == 0
    # 10.0.0.1 has used its three (the refused ALICE attempt counted nowhere)
    assert throttle.acquire("dave", "10.0.0.1", 4.0) == pytest.approx(56.0)
    assert throttle.acquire("dave", "10.0.0.1", 61.0) == 0  # the window has passed
    throttle.record_success("alice", "10.0.0.2", 5.0)
    assert throttle.acquire("alice", "10.0.0.3", 5.0) == 0


def _check_a_success_gives_the_address_its_attempt_back(throttle: LoginThrottle) -> None:
    for n in range(3):
        assert throttle.acquire(f"user{n}", "10.0.0.1", 1.0) == 0
        throttle.record_success(f"user{n}", "10.0.0.1", 1.0)
    assert throttle.acquire("user9", "10.0.0.1", 1.0) == 0


def test_the_memory_throttle_counts_per_account_and_per_address() -> None:
    _check_counts_per_account_and_per_address(MemoryLoginThrottle(**LIMITS))  # type: ignore[arg-type]
    _check_a_success_gives_the_address_its_attempt_back(MemoryLoginThrottle(**LIMITS))  # type: ignore[arg-type]


def test_the_database_throttle_counts_per_account_and_per_address(test_db: TestDatabase) -> None:
    _check_counts_per_account_and_per_address(_database_throttle(test_db))
    test_db.reset()
    _check_a_success_gives_the_address_its_attempt_back(_database_throttle(test_db))


def test_concurrent_attempts_get_exactly_the_limit(test_db: TestDatabase) -> None:
    """Attempts racing on one counter: no read-modify-write lets an extra one through."""
    throttle = _database_throttle(test_db, failures_per_account=5, failures_per_address=1000)
    with ThreadPoolExecutor(8) as pool:
        waits = list(
            pool.map(lambda n: throttle.acquire("mallory", f"10.1.0.{n}", 10.0), range(40))
        )
    assert sum(1 for w in waits if w == 0) == 5


def test_expired_counters_are_pruned_and_a_flood_stays_bounded(test_db: TestDatabase) -> None:
    throttle = _database_throttle(test_db, failures_per_address=10)
    for _ in range(30):  # random names from one address: past its limit nothing is written
        throttle.acquire(secrets.token_hex(8), "10.2.0.1", 100.0)
    assert _rows(test_db) == 11  # the address and the ten names it was allowed
    throttle.acquire("late", "10.2.0.2", 130.0)
    assert throttle.prune(170.0) == 11  # the flood's window ended at 160
    assert _rows(test_db) == 2
