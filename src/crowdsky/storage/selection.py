"""Which stores a server process uses: raw buffer, result store and result reader.

``CROWDSKY_RAW_STORE=s3://bucket/prefix`` selects
:class:`~crowdsky.storage.s3_raw_store.S3RawStore`; unset, the raw buffer stays in
``<data dir>/uploads`` (the embedded default). ``CROWDSKY_RESULT_STORE`` names where
finished stacks live: the local results folder (default), the workers' WebDAV share,
or an S3 bucket (:class:`~crowdsky.storage.s3_result_store.S3ResultStore`, which also
lets workers publish by presigned PUT and completions be checked). Downloads read
through :func:`open_result_reader`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from crowdsky.config import ServerSettings
from crowdsky.storage import s3_client
from crowdsky.storage.raw_store import RawStore
from crowdsky.storage.result_reader import ResultReader
from crowdsky.storage.result_store import LocalResultStore

if TYPE_CHECKING:
    from crowdsky.storage.s3_result_store import S3ResultStore

#: Per-process scratch space of the S3 store (files being received), under the data dir.
STAGING_DIR_NAME = "s3-staging"
#: An unfinished upload older than this is abandoned (seconds).
STALE_UPLOAD_SECONDS = 3600


def s3_options(settings: ServerSettings) -> s3_client.S3Options:
    """The S3 connection options from the settings (``None`` fields: boto3's defaults)."""

    def secret(value: object) -> str | None:
        getter = getattr(value, "get_secret_value", None)
        return None if getter is None else str(getter())

    return s3_client.S3Options(
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=secret(settings.s3_access_key_id),
        secret_access_key=secret(settings.s3_secret_access_key),
        session_token=secret(settings.s3_session_token),
        presign_seconds=settings.s3_presign_seconds,
    )


def open_raw_store(settings: ServerSettings) -> RawStore:
    """The raw store the settings name (creating the local folders it needs)."""
    if not settings.raw_store:
        settings.uploads_dir.mkdir(parents=True, exist_ok=True)
        return RawStore(settings.uploads_dir)
    from crowdsky.storage.s3_raw_store import S3RawStore

    options = s3_options(settings)
    return S3RawStore(
        s3_client.make_client(options),
        s3_client.parse_s3_url(settings.raw_store),
        settings.data_dir / STAGING_DIR_NAME,
        presign_seconds=options.presign_seconds,
        part_bytes=options.part_bytes,
    )


def open_result_store(settings: ServerSettings) -> S3ResultStore | None:
    """The S3 result store the settings name, or None (workers publish elsewhere)."""
    if not settings.result_store or not settings.result_store.startswith("s3://"):
        return None
    from crowdsky.storage.s3_result_store import S3ResultStore

    options = s3_options(settings)
    return S3ResultStore(
        s3_client.make_client(options),
        s3_client.parse_s3_url(settings.result_store),
        part_bytes=options.part_bytes,
    )


def open_result_reader(
    settings: ServerSettings, *, s3_store: S3ResultStore | None = None
) -> ResultReader:
    """The result store downloads read from (``CROWDSKY_RESULT_STORE``); the S3 store
    already opened (``s3_store``) is reused.

    Raises
    ------
    ShareConfigError
        ``webdav`` without a usable share URL and token.
    """
    if settings.result_store is None:
        return LocalResultStore(settings.resolved_results_dir)
    if settings.result_store == "webdav":
        from crowdsky.storage.webdav_reader import WebDavResultReader
        from crowdsky.storage.webdav_share import ShareConfigError

        if not settings.results_webdav_url:
            raise ShareConfigError("CROWDSKY_RESULT_STORE=webdav needs UCLOUD_WEBDAV_URL")
        token, password = settings.results_share_token, settings.results_share_password
        return WebDavResultReader(
            settings.results_webdav_url,
            token.get_secret_value() if token else None,
            password.get_secret_value() if password else None,
        )
    if s3_store is not None:
        return s3_store
    opened = open_result_store(settings)
    assert opened is not None  # result_store is an s3:// URL here
    return opened


def close_raw_store(store: RawStore) -> None:
    """Let background transfers finish (the S3 store's aborts and deletions)."""
    close = getattr(store, "close", None)
    if close is not None:
        close()


def abort_stale_uploads(store: RawStore, now: datetime) -> int:
    """Abort receptions older than :data:`STALE_UPLOAD_SECONDS` (cleanup calls this).

    No single file takes that long to arrive (64 MiB at 1 Mbit/s is 9 minutes), so an
    upload that old was left by a server process that died mid-request.
    """
    return store.abort_stale_uploads(now - timedelta(seconds=STALE_UPLOAD_SECONDS))
