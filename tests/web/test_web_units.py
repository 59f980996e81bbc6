"""The web app's pieces without a browser: cookies, CSRF, password rule, sky cells, ZIP."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from crowdsky.ingest.chunking import healpix_ring_pixel
from crowdsky.web.cookies import CookieSigner
from crowdsky.web.passwords import password_problem
from crowdsky.web.queries import sky_cells
from crowdsky.web.zipstream import stream_zip


def test_session_cookie_round_trip_and_tampering() -> None:
    signer = CookieSigner(b"k" * 32, max_age_s=3600)
    value = signer.session_cookie(7, "f" * 64)
    data = signer.read_session(value)
    assert data is not None and data.user_id == 7 and data.fingerprint == "f" * 32
    body, _, mac = value.partition(".")
    assert signer.read_session(body + "." + mac[:-2] + "AA") is None
    assert signer.read_session(value.replace(body, body[:-1] + "x")) is None
    assert CookieSigner(b"other-key" * 4, 3600).read_session(value) is None
    assert CookieSigner(b"k" * 32, max_age_s=-1).read_session(value) is None
    assert signer.read_session("garbage") is None


def test_csrf_token_belongs_to_its_cookie() -> None:
    signer = CookieSigner(b"k" * 32, 3600)
    cookie, other = signer.new_csrf_cookie(), signer.new_csrf_cookie()
    assert signer.check_csrf(cookie, signer.csrf_token(cookie))
    assert not signer.check_csrf(other, signer.csrf_token(cookie))
    assert not signer.check_csrf(cookie, "")
    assert not signer.check_csrf(None, signer.csrf_token(cookie))


@pytest.mark.parametrize(
    ("password", "ok"),
    [
        ("short1A!", False),
        ("alllowercaseletters", True),  # 16+ characters of anything
        ("lowercase12", False),  # two classes, under 16
        ("Lowercase12", True),
        ("Xastronomer99", False),  # contains the user name
        ("aaaaaaaaaaaaaaaaaa", False),  # repetitive
    ],
)
def test_password_rule(password: str, ok: bool) -> None:
    assert (password_problem(password, "astronomer") is None) is ok


def test_sky_cells_counts_means_and_wrap() -> None:
    columns = {
        "ra": [359.9, 0.1, 359.95, 180.0, None],
        "dec": [10.0, 10.0, 10.02, -30.0, 5.0],
        "filter": ["IRCUT", "LP", "LP", None, "IRCUT"],
    }
    cells = sky_cells(columns)
    for nside in ("4", "16", "64"):
        assert sum(c[1] for c in cells[nside]) == 4
        assert {c[0] for c in cells[nside]} >= {healpix_ring_pixel(180.0, -30.0, int(nside))}
    coarse = {c[0]: c for c in cells["4"]}
    near_zero = coarse[healpix_ring_pixel(0.0, 10.0, 4)]
    assert near_zero[1] == 3
    assert min(near_zero[2], 360 - near_zero[2]) < 0.1  # the mean did not fall to RA 180
    assert near_zero[4] == "LP"
    assert sky_cells({"ra": [], "dec": [], "filter": []}) == {"4": [], "16": [], "64": []}


def test_stream_zip_is_a_valid_archive(tmp_path: Path) -> None:
    files = []
    for i, size in enumerate([0, 10, 3 * 1024 * 1024 + 5]):
        path = tmp_path / f"f{i}.fits"
        path.write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
        files.append(path)

    def gone() -> list[bytes]:
        raise LookupError("deleted meanwhile")

    def source(path: Path) -> Callable[[], list[bytes]]:
        data = path.read_bytes()
        return lambda: [data[i : i + 65536] for i in range(0, len(data), 65536)]

    members = [
        ("a.fits", source(files[0])),
        ("a.fits", source(files[1])),
        ("gone.fits", gone),
        ("big.fits", source(files[2])),
    ]
    data = b"".join(stream_zip(members))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == ["a.fits", "a-2.fits", "big.fits", "MISSING.txt"]
        assert b"gone.fits" in archive.read("MISSING.txt")
        assert archive.read("big.fits") == files[2].read_bytes()
        assert archive.read("a-2.fits") == files[1].read_bytes()


def test_the_privacy_default_is_the_one_the_completion_reads(test_db) -> None:  # type: ignore[no-untyped-def]
    """The account page's "public" box and the client API's default are one setting."""
    from crowdsky.db.types import utcnow
    from crowdsky.stacks.catalog import default_private
    from crowdsky.testing import ensure_user
    from crowdsky.web import queries

    with test_db.session_factory() as session:
        user_id = ensure_user(session, "owner")
        assert queries.preferences(session, user_id)["stacks_public"] is True
        queries.set_preferences(
            session, utcnow(), user_id, stacks_public=False, scrub_location=True
        )
        assert default_private(session, user_id=user_id) is True
        assert queries.preferences(session, user_id) == {
            "stacks_public": False,
            "scrub_location": True,
        }
