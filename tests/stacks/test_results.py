"""Deleting the files of replaced stacks from the local result store."""

from __future__ import annotations

from pathlib import Path

from crowdsky.stacks import discard_result_files


def test_replaced_files_go_and_foreign_paths_are_left(tmp_path: Path) -> None:
    fits = tmp_path / "crowdsky" / "stacks" / "user_1" / "M_94" / "stack_k_1.fits"
    fits.parent.mkdir(parents=True)
    fits.write_bytes(b"SIMPLE")
    outside = tmp_path.parent / "keep.txt"
    outside.write_text("not a result")
    tried = discard_result_files(
        tmp_path, ["/crowdsky/stacks/user_1/M_94/stack_k_1.fits", "/x/../../keep.txt"]
    )
    assert tried == 1 and not fits.exists() and outside.exists()
    assert discard_result_files(tmp_path, ["/crowdsky/stacks/missing.png"]) == 1
