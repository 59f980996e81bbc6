"""Client file names (``ingest/filenames.py``)."""

from __future__ import annotations

import pytest

from crowdsky.ingest import InvalidFileName, check_file_name
from crowdsky.ingest.filenames import storage_name


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("../etc/passwd.fit", "'..'"),
        ("a/../../b.fit", "'..'"),
        ("..\\x.fit", "'..'"),
        ("/etc/passwd", "absolute path"),
        ("\\\\server\\share\\x.fit", "absolute path"),
        ("C:\\frames\\x.fit", "absolute path"),
        ("x\x00.fit", "NUL byte"),
        ("x\n.fit", "control characters"),
        ("a" * 300 + ".fit", "longer than 255 bytes"),
        ("", "no file name"),
        (None, "no file name"),
        ("frames/", "no base name"),
    ],
)
def test_unsafe_names_are_refused(raw: str | None, fragment: str) -> None:
    with pytest.raises(InvalidFileName, match=fragment):
        check_file_name(raw)


def test_plain_and_relative_names() -> None:
    assert check_file_name("Light_M 94_10.0s_IRCUT_20250326-212046.fit") == (
        "Light_M 94_10.0s_IRCUT_20250326-212046.fit"
    )
    assert check_file_name("night1/frame.fit") == "frame.fit"


def test_storage_name_is_safe() -> None:
    assert storage_name("Light_M 94_10.0s.fit") == "Light_M_94_10.0s.fit"
    assert storage_name(".hidden.fit") == "hidden.fit"
    assert storage_name("ünïcode name.fits") == "_n_code_name.fits"
