"""Result paths as the original (§9) and safe names; the local result store."""

from __future__ import annotations

from pathlib import Path

import pytest

from crowdsky.storage.result_paths import result_paths, safe_segment
from crowdsky.storage.result_store import LocalResultStore, ResultStore


def test_paths_follow_the_original_layout() -> None:
    p = result_paths("/crowdsky", 1, "M42", "20250115.78_83.6_+22.0", 42)
    assert p.folder == "/crowdsky/stacks/user_1/M42"
    assert p.fits == "/crowdsky/stacks/user_1/M42/stack_20250115.78_83.6_+22.0_42.fits"
    assert p.thumbnail == "/crowdsky/stacks/user_1/M42/stack_20250115.78_83.6_+22.0_42_thumb.png"


def test_faq_example() -> None:
    p = result_paths("", 1, "NGC 188", "20251024.75_10.3_+85.1", 1)
    assert p.fits == "/stacks/user_1/NGC_188/stack_20251024.75_10.3_+85.1_1.fits"


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        (None, "unknown"),
        ("", "unknown"),
        ("  ", "unknown"),
        ("M 31/Andromeda", "M_31_Andromeda"),
        ("..", "unknown"),
        ("../../etc/passwd", "_.._etc_passwd"),
        ("C/2023 A3 (Tsuchinshan)", "C_2023_A3_Tsuchinshan_"),
        ("Sh2-155", "Sh2-155"),
    ],
)
def test_safe_segment(raw: str | None, safe: str) -> None:
    assert safe_segment(raw) == safe
    assert "/" not in safe_segment(raw)


def test_local_store_is_atomic_and_contained(tmp_path: Path) -> None:
    store = LocalResultStore(tmp_path / "results")
    assert isinstance(store, ResultStore)
    src = tmp_path / "a.fits"
    src.write_bytes(b"x" * 3000)
    store.mkcol("/crowdsky/stacks/user_1/M42")
    assert store.upload_file(src, "/crowdsky/stacks/user_1/M42/a.fits") == 3000
    out = tmp_path / "results/crowdsky/stacks/user_1/M42/a.fits"
    assert out.read_bytes() == b"x" * 3000
    src.write_bytes(b"y")
    store.upload_file(src, "/crowdsky/stacks/user_1/M42/a.fits")
    assert out.read_bytes() == b"y"
    assert [p.name for p in out.parent.iterdir()] == ["a.fits"]  # no temp files left
    store.delete_files(["/crowdsky/stacks/user_1/M42/a.fits", "/missing"])
    assert not out.exists()
    with pytest.raises(ValueError):
        store.path_for("/crowdsky/../../x")
