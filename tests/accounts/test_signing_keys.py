"""``accounts/signing_keys.py``: one key per name, created once, the same for every process."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from crowdsky.accounts import shared_signing_key
from crowdsky.db.models import SigningKey
from crowdsky.db.types import utcnow
from tests.db_backends import TestDatabase


def _key(db: TestDatabase, name: str, adopt: str | None = None) -> str:
    with db.session_factory() as session:
        return shared_signing_key(session, utcnow(), name, adopt=lambda: adopt)


def test_a_key_is_created_once_and_then_read(test_db: TestDatabase) -> None:
    first = _key(test_db, "web-cookies")
    assert len(first) == 64 and int(first, 16) >= 0
    assert _key(test_db, "web-cookies") == first
    assert _key(test_db, "other") != first  # names are independent


def test_an_earlier_key_is_adopted_only_when_none_is_stored(test_db: TestDatabase) -> None:
    earlier = "e" * 40
    assert _key(test_db, "web-cookies", adopt=earlier) == earlier
    assert _key(test_db, "web-cookies", adopt="f" * 40) == earlier
    # a too short value to adopt is not a key: a random one is made instead
    assert _key(test_db, "short", adopt="abc") not in ("abc", earlier)


def test_concurrent_first_calls_all_get_the_one_stored_key(test_db: TestDatabase) -> None:
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: _key(test_db, "web-cookies"), range(16)))
    assert len(keys) == 1
    with test_db.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(SigningKey)) == 1
        assert session.scalar(select(SigningKey.value)) == keys.pop()
