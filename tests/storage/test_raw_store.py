"""The raw-frame buffer on disk (``storage/raw_store.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crowdsky.storage.raw_store import PARTIAL_PREFIX, RawStore

SESSION = "user_1/sess_abc"


@pytest.fixture
def store(tmp_path: Path) -> RawStore:
    store = RawStore(tmp_path / "uploads")
    store.resolve(SESSION).mkdir(parents=True)
    return store


def test_a_folder_with_only_stale_partials_is_removed_with_them(store: RawStore) -> None:
    folder = store.resolve(SESSION)
    (folder / f"{PARTIAL_PREFIX}x").write_bytes(b"half a frame")
    assert store.remove_dir_if_empty(SESSION)
    assert not folder.exists() and not folder.parent.exists()


def test_a_folder_with_a_frame_or_a_receiving_upload_is_kept(store: RawStore) -> None:
    folder = store.resolve(SESSION)
    (folder / f"{PARTIAL_PREFIX}x").write_bytes(b"arriving")
    assert not store.remove_dir_if_empty(SESSION, keep_if_receiving=True)
    (folder / "a.fit").write_bytes(b"frame")
    assert not store.remove_dir_if_empty(SESSION)
    assert sorted(p.name for p in folder.iterdir()) == [f"{PARTIAL_PREFIX}x", "a.fit"]


def test_a_frame_published_after_the_check_is_not_deleted(
    store: RawStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder is judged on one listing; a file arriving after it survives."""
    folder = store.resolve(SESSION)
    (folder / f"{PARTIAL_PREFIX}x").write_bytes(b"stale")
    original_iterdir = Path.iterdir

    def iterdir_then_publish(self: Path) -> Iterator[Path]:
        entries = list(original_iterdir(self))
        if self == folder and not (folder / "late.fit").exists():
            (folder / "late.fit").write_bytes(b"published in between")
        return iter(entries)

    monkeypatch.setattr(Path, "iterdir", iterdir_then_publish)
    assert not store.remove_dir_if_empty(SESSION)
    monkeypatch.undo()
    assert [p.name for p in folder.iterdir()] == ["late.fit"]
    assert (folder / "late.fit").read_bytes() == b"published in between"
