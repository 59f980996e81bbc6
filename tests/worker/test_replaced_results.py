"""The worker deletes only the replaced stacks' files under its own base path."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from crowdsky.storage.result_store import LocalResultStore
from crowdsky.worker.replaced_results import discard_replaced

OLD = "/crowdsky/stacks/user_1/M42/stack_20250115.78_83.6_+22.0_7.fits"


def _publish(store: LocalResultStore, tmp_path: Path, remote: str) -> Path:
    source = tmp_path / "x.fits"
    source.write_bytes(b"SIMPLE")
    store.upload_file(source, remote)
    return store.path_for(remote)


def test_only_paths_under_the_base_path_are_deleted(tmp_path: Path) -> None:
    store = LocalResultStore(tmp_path / "results")
    old = _publish(store, tmp_path, OLD)
    other = _publish(store, tmp_path, "/elsewhere/keep.fits")
    answer = {"ok": True, "replaced_files": [OLD, "/elsewhere/keep.fits", "/crowdsky/../x"]}
    assert discard_replaced(store, "/crowdsky", answer) == 1
    assert not old.exists() and other.is_file()


def test_an_answer_without_replaced_files_deletes_nothing(tmp_path: Path) -> None:
    store = LocalResultStore(tmp_path / "results")
    old = _publish(store, tmp_path, OLD)
    assert discard_replaced(store, "/crowdsky", {"ok": True}) == 0
    assert discard_replaced(store, "/crowdsky", {"replaced_files": "oops"}) == 0
    assert old.is_file()


class _BrokenStore(LocalResultStore):
    def delete_files(self, remote_paths: Iterable[str]) -> None:
        raise OSError("share down")


def test_a_store_error_is_logged_not_raised(tmp_path: Path) -> None:
    store = _BrokenStore(tmp_path / "results")
    assert discard_replaced(store, "/crowdsky", {"replaced_files": [OLD]}) == 0
