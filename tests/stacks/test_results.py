"""Deleting the files of stacks whose rows are gone, from the server's result store."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from crowdsky.stacks import discard_result_files
from crowdsky.stacks.results import published_files
from crowdsky.storage import LocalResultStore
from crowdsky.storage.result_reader import ResultStoreUnavailable


def test_replaced_files_go_with_their_star_list_and_foreign_paths_are_left(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "crowdsky" / "stacks" / "user_1" / "M_94"
    folder.mkdir(parents=True)
    for name in ("stack_k_1.fits", "stack_k_1_thumb.png", "stack_k_1_stars.json", "other.fits"):
        (folder / name).write_bytes(b"SIMPLE")
    outside = tmp_path.parent / "keep.txt"
    outside.write_text("not a result")
    store = LocalResultStore(tmp_path)
    deleted = discard_result_files(
        store,
        [
            "/crowdsky/stacks/user_1/M_94/stack_k_1.fits",
            "/crowdsky/stacks/user_1/M_94/stack_k_1_thumb.png",
            "/x/../../keep.txt",
        ],
    )
    assert deleted == 3 and sorted(p.name for p in folder.iterdir()) == ["other.fits"]
    assert outside.exists()
    assert discard_result_files(store, ["/crowdsky/stacks/missing.png"]) == 1


def test_the_star_list_of_a_stack_is_one_of_its_files() -> None:
    assert published_files(["/s/stack_k_7.fits", "/s/stack_k_7_thumb.png"]) == [
        "/s/stack_k_7.fits",
        "/s/stack_k_7_stars.json",
        "/s/stack_k_7_thumb.png",
    ]


class _DownStore:
    """A result store that refuses every deletion (a share that is down)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def delete_files(self, remote_paths: Iterable[str]) -> None:
        self.asked += list(remote_paths)
        raise ResultStoreUnavailable("HTTP 503")

    def describe(self) -> str:
        return "down"


def test_a_store_that_is_down_leaves_the_files_and_raises_nothing() -> None:
    store = _DownStore()
    assert discard_result_files(store, ["/s/stack_k_7.fits"]) == 0  # type: ignore[arg-type]
    assert store.asked == ["/s/stack_k_7.fits", "/s/stack_k_7_stars.json"]
