"""The login throttle in the database: one set of counters for every server process.

Counters per process would give N servers N times the guesses, so
:class:`DatabaseLoginThrottle` keeps them in ``login_failures``. Each counter moves by
a guarded ``UPDATE`` (never read-modify-write), each statement is its own short
transaction, and none is open while a password is hashed; a key already at its limit
costs one read. Expired rows are pruned at most every ``PRUNE_INTERVAL_S``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crowdsky.db.engine import affected_rows
from crowdsky.db.models import LoginFailure

#: Expired counters are deleted at most this often per process (seconds).
PRUNE_INTERVAL_S = 60.0
#: Rounds of the update/insert race before giving up on one attempt.
MAX_ROUNDS = 4
#: Wait answered when the counter could not be moved in ``MAX_ROUNDS`` (fails closed).
CONTENDED_RETRY_AFTER_S = 1.0


def throttle_key(kind: str, value: str) -> str:
    """The stored key of an account (``kind="account"``, case-folded) or an address."""
    if kind == "account":
        value = value.lower()
    digest = hashlib.sha256(kind.encode() + b"\x00" + value.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


class DatabaseLoginThrottle:
    """A fixed-window attempt counter per account and per address, in a table.

    Parameters
    ----------
    session_factory
        Opens a session on the server's database (called per operation, so the
        throttle can be built before the engine exists).
    failures_per_account, failures_per_address
        Attempts allowed inside one window before that key is throttled.
    window_seconds
        Length of the counting window; a throttled key waits until its window ends.
    """

    def __init__(
        self,
        session_factory: Callable[[], Session],
        *,
        failures_per_account: int,
        failures_per_address: int,
        window_seconds: float,
    ) -> None:
        self._sessions = session_factory
        self._account_limit = failures_per_account
        self._address_limit = failures_per_address
        self._window = window_seconds
        self._prune_lock = threading.Lock()
        self._last_prune = float("-inf")

    def acquire(self, account: str, address: str, now: float) -> float:
        """Count one attempt for both keys; 0 to go ahead, else the seconds to wait.

        A key already at its limit is seen by one read and nothing is written (a
        flood's usual case). Otherwise the address is counted first; if the account
        then refuses, the address's attempt is given back, so a refused attempt
        counts nowhere.
        """
        self._maybe_prune(now)
        address_key = throttle_key("address", address)
        account_key = throttle_key("account", account)
        wait = self._current_wait(
            {address_key: self._address_limit, account_key: self._account_limit}, now
        )
        if wait > 0:  # the flood's usual case: one read, no write
            return wait
        wait = self._take(address_key, self._address_limit, now)
        if wait > 0:
            return wait
        wait = self._take(account_key, self._account_limit, now)
        if wait > 0:
            self._give_back(address_key)
        return wait

    def record_success(self, account: str, address: str, now: float) -> None:
        """Forget the account's attempts and give the address its attempt back."""
        with self._sessions() as session, session.begin():
            session.execute(
                delete(LoginFailure).where(LoginFailure.key == throttle_key("account", account))
            )
        self._give_back(throttle_key("address", address))

    def prune(self, now: float) -> int:
        """Delete every expired counter; returns how many went."""
        with self._sessions() as session, session.begin():
            return affected_rows(
                session.execute(
                    delete(LoginFailure).where(LoginFailure.window_start <= now - self._window)
                )
            )

    def _current_wait(self, limits: dict[str, int], now: float) -> float:
        """The wait that the keys' live counters impose now (0: none at its limit)."""
        cutoff = now - self._window
        with self._sessions() as session, session.begin():
            rows = session.execute(
                select(LoginFailure.key, LoginFailure.window_start, LoginFailure.failures).where(
                    LoginFailure.key.in_(list(limits)), LoginFailure.window_start > cutoff
                )
            ).all()
        waits = [r.window_start + self._window - now for r in rows if r.failures >= limits[r.key]]
        return max(waits, default=0.0)

    def _take(self, key: str, limit: int, now: float) -> float:
        cutoff = now - self._window
        table = LoginFailure
        for _ in range(MAX_ROUNDS):
            with self._sessions() as session, session.begin():
                counted = session.execute(
                    update(table)
                    .where(table.key == key, table.window_start > cutoff, table.failures < limit)
                    .values(failures=table.failures + 1)
                )
                if affected_rows(counted) == 1:
                    return 0.0
                restarted = session.execute(
                    update(table)
                    .where(table.key == key, table.window_start <= cutoff)
                    .values(failures=1, window_start=now)
                )
                if affected_rows(restarted) == 1:
                    return 0.0
                started = session.execute(
                    select(table.window_start).where(table.key == key)
                ).scalar_one_or_none()
            if started is not None:
                if started > cutoff:  # live and at its limit
                    return started + self._window - now
                continue  # expired between the statements: go round
            try:
                with self._sessions() as session, session.begin():
                    session.execute(insert(table).values(key=key, window_start=now, failures=1))
                return 0.0
            except IntegrityError:
                continue  # a concurrent first attempt inserted it: count against that row
        return CONTENDED_RETRY_AFTER_S

    def _give_back(self, key: str) -> None:
        with self._sessions() as session, session.begin():
            session.execute(
                update(LoginFailure)
                .where(LoginFailure.key == key, LoginFailure.failures > 0)
                .values(failures=LoginFailure.failures - 1)
            )

    def _maybe_prune(self, now: float) -> None:
        if now - self._last_prune < PRUNE_INTERVAL_S or not self._prune_lock.acquire(False):
            return
        try:
            self._last_prune = now
            self.prune(now)
        finally:
            self._prune_lock.release()
