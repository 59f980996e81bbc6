"""WebDavClient against a real wsgidav process configured like a Nextcloud public share."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from crowdsky.worker.errors import ConfigError, StorageAuthError, StorageError
from crowdsky.worker.webdav import WebDavClient, encode_remote_path, resolve_share_endpoint
from tests.support.webdav_server import WebDavServer, running_webdav_server
from tests.worker.fakes import no_wait_retry

CHUNK = "20250115.78_83.6_+22.0"


def legacy_client(share: WebDavServer, **kwargs: object) -> WebDavClient:
    return WebDavClient(share.legacy_url, share.token, "", retry=no_wait_retry(3), **kwargs)  # type: ignore[arg-type]


def v2_client(share: WebDavServer) -> WebDavClient:
    return WebDavClient(share.v2_url, None, None, retry=no_wait_retry(3))


@pytest.fixture
def stack_file(tmp_path: Path) -> Path:
    path = tmp_path / "stack.fits"
    path.write_bytes(bytes(range(256)) * 12_000)  # ~3 MB, several PUT chunks
    return path


def test_endpoint_flavours() -> None:
    legacy = resolve_share_endpoint("https://h/public.php/webdav/", "Tok", None)
    assert legacy.flavour == "legacy"
    assert legacy.auth == ("Tok", "")
    assert legacy.base_url == "https://h/public.php/webdav"
    v2 = resolve_share_endpoint("https://h/nc/public.php/dav/files/Tok", None, None)
    assert (v2.flavour, v2.auth, v2.base_url) == (
        "v2",
        None,
        "https://h/nc/public.php/dav/files/Tok",
    )
    v2p = resolve_share_endpoint("https://h/public.php/dav/files", "Tok", "pw")
    assert v2p.base_url.endswith("/public.php/dav/files/Tok")
    assert v2p.auth == ("anonymous", "pw")
    with pytest.raises(ConfigError):
        resolve_share_endpoint("https://h/public.php/dav/files/A", "B", None)
    with pytest.raises(ConfigError):
        resolve_share_endpoint("https://h/public.php/webdav", None, None)


def test_remote_paths_are_encoded() -> None:
    assert encode_remote_path(f"/crowdsky/stacks/user_1/M42/stack_{CHUNK}_4.fits") == (
        "crowdsky/stacks/user_1/M42/stack_20250115.78_83.6_%2B22.0_4.fits"
    )
    with pytest.raises(StorageError):
        encode_remote_path("/a/../b")


@pytest.mark.parametrize("flavour", ["legacy", "v2"])
def test_mkcol_and_streamed_put_on_both_endpoints(
    share: WebDavServer, stack_file: Path, flavour: str
) -> None:
    remote = f"/crowdsky/stacks/user_1/M42/stack_{CHUNK}_42.fits"
    with legacy_client(share) if flavour == "legacy" else v2_client(share) as dav:
        dav.mkcol("/crowdsky/stacks/user_1/M42")
        assert dav.upload_file(stack_file, remote) == stack_file.stat().st_size
        assert dav.exists(remote)
        # overwrite (a retried job writes to the same deterministic name)
        dav.upload_file(stack_file, remote)
    on_disk = share.share_file(remote, flavour=flavour)
    assert on_disk.read_bytes() == stack_file.read_bytes()
    seen = share.requests()
    assert seen and all(r["x_requested_with"] == "XMLHttpRequest" for r in seen)
    puts = [r for r in seen if r["method"] == "PUT"]
    assert all(r["content_length"] == str(stack_file.stat().st_size) for r in puts)
    if flavour == "legacy":
        assert all(r["auth_user"] == share.token for r in seen)
    else:
        assert all(r["auth_user"] is None for r in seen)
    mkcols = [r["path"] for r in seen if r["method"] == "MKCOL"]
    assert all(p.endswith("/") for p in mkcols)  # trailing slash, level by level
    assert len(mkcols) == 4


def test_mkcol_is_idempotent(share: WebDavServer) -> None:
    with legacy_client(share) as first, legacy_client(share) as second:
        first.mkcol("/crowdsky/stacks/user_2/M31")
        second.mkcol("/crowdsky/stacks/user_2/M31")  # 405 on every level is fine
    statuses = [r["status"] for r in share.requests() if r["method"] == "MKCOL"]
    assert 405 in statuses


def test_missing_header_is_refused_by_the_emulated_share(share: WebDavServer) -> None:
    response = httpx.request(
        "MKCOL", share.legacy_url + "/nope/", auth=(share.token, ""), timeout=10
    )
    assert response.status_code == 401
    response = httpx.request("MKCOL", share.v2_url + "/nope/", timeout=10)
    assert response.status_code == 401


def test_wrong_token_fails_fast_without_retry(share: WebDavServer) -> None:
    dav = WebDavClient(share.legacy_url, "WrongToken", "", retry=no_wait_retry(4))
    with dav, pytest.raises(StorageAuthError, match="credentials rejected"):
        dav.mkcol("/crowdsky")
    assert len(share.requests()) == 1  # never retried: Nextcloud throttles failed logins


def test_507_fails_at_once(share: WebDavServer, stack_file: Path) -> None:
    share.set_mode("507")
    with legacy_client(share) as dav, pytest.raises(StorageError, match="507") as info:
        dav.upload_file(stack_file, "/x.fits")
    assert info.value.status_code == 507
    assert len([r for r in share.requests() if r["method"] == "PUT"]) == 1


def test_transient_503_is_retried_with_a_fresh_body(share: WebDavServer, stack_file: Path) -> None:
    with legacy_client(share) as dav:
        dav.mkcol("/retry")
        share.set_mode("flaky:2:503")
        dav.upload_file(stack_file, "/retry/s.fits")
    assert share.share_file("/retry/s.fits").read_bytes() == stack_file.read_bytes()


def test_persistent_503_gives_up(share: WebDavServer, stack_file: Path) -> None:
    share.set_mode("503")
    with legacy_client(share) as dav, pytest.raises(StorageError, match="after 3 attempts"):
        dav.upload_file(stack_file, "/s.fits")


def test_share_down_is_a_storage_error(share: WebDavServer, stack_file: Path) -> None:
    share.stop()
    with legacy_client(share) as dav, pytest.raises(StorageError, match="unavailable"):
        dav.mkcol("/down")


def test_delete_and_download(share: WebDavServer, stack_file: Path, tmp_path: Path) -> None:
    with v2_client(share) as dav:
        dav.mkcol("/dl")
        dav.upload_file(stack_file, "/dl/a.fits")
        out = tmp_path / "back.fits"
        assert dav.download_file("/dl/a.fits", out) == stack_file.stat().st_size
        assert out.read_bytes() == stack_file.read_bytes()
        dav.delete_files(["/dl/a.fits", "/dl/never-there.fits"])
        assert not dav.exists("/dl/a.fits")


def test_password_protected_v2_share(tmp_path: Path, stack_file: Path) -> None:
    with running_webdav_server(tmp_path / "pw", v2_password="s3cret-placeholder") as share:
        anonymous = WebDavClient(share.v2_url, None, None, retry=no_wait_retry(2))
        with anonymous, pytest.raises(StorageAuthError):
            anonymous.mkcol("/p")
        with WebDavClient(share.v2_url, None, "s3cret-placeholder") as dav:
            dav.mkcol("/p")
            dav.upload_file(stack_file, "/p/a.fits")
        assert share.share_file("/p/a.fits", flavour="v2").is_file()
