"""Results on S3: the :class:`~crowdsky.storage.result_store.ResultStore` protocol on a bucket.

Share-style paths (``/crowdsky/stacks/user_1/M42/stack_..._42.fits``) become keys under
the store's prefix. An S3 PUT (single or multipart) is atomic: a reader sees the old
object or the whole new one, never half a stack, so a retried job replaces its
results in place as on the local folder. Folders do not exist in S3, so ``mkcol`` only
validates the path. :meth:`S3ResultStore.presigned_put_url` signs a PUT that a worker
without store credentials can use for one result file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from crowdsky.storage import result_reader, s3_client

DELETE_BATCH = 1000


class S3ResultStore:
    """Results under ``s3://bucket/prefix``.

    Parameters
    ----------
    client
        A boto3 S3 client (:func:`crowdsky.storage.s3_client.make_client`).
    location
        Bucket and key prefix.
    part_bytes
        Files larger than this go up as multipart uploads of parts this size.
    """

    def __init__(
        self,
        client: Any,
        location: s3_client.S3Location,
        *,
        part_bytes: int = s3_client.DEFAULT_PART_BYTES,
    ) -> None:
        from boto3.s3.transfer import TransferConfig

        self.client = client
        self.location = location
        self._transfer = TransferConfig(
            multipart_threshold=part_bytes, multipart_chunksize=part_bytes
        )

    def key(self, remote_path: str) -> str:
        """The object key of a share-style path; refuses ``.``/``..`` segments."""
        parts = [p for p in remote_path.replace("\\", "/").split("/") if p]
        if not parts or any(p in (".", "..") for p in parts) or "\x00" in remote_path:
            raise ValueError(f"refusing result path {remote_path!r}")
        return self.location.key("/".join(parts))

    def describe(self) -> str:
        """``s3://bucket/prefix``."""
        return f"s3 {self.location.url}"

    def mkcol(self, remote_path: str) -> None:
        """Nothing to create in S3; the path is checked."""
        self.key(remote_path)

    def upload_file(
        self,
        local_path: Path | str,
        remote_path: str,
        *,
        on_bytes: Callable[[int], None] | None = None,
    ) -> int:
        """Upload ``local_path`` to its key (replacing it); returns the size."""
        size = Path(local_path).stat().st_size
        self.client.upload_file(
            str(local_path),
            self.location.bucket,
            self.key(remote_path),
            Config=self._transfer,
            Callback=on_bytes,
        )
        return size

    def delete_files(self, remote_paths: Iterable[str]) -> None:
        """Delete objects; missing ones are not an error."""
        keys = [self.key(p) for p in remote_paths]
        for start in range(0, len(keys), DELETE_BATCH):
            self.client.delete_objects(
                Bucket=self.location.bucket,
                Delete={"Objects": [{"Key": k} for k in keys[start : start + DELETE_BATCH]]},
            )

    def presigned_put_url(self, remote_path: str, expires_s: int) -> str:
        """A URL that accepts one PUT of the file at ``remote_path`` for ``expires_s`` seconds."""
        url: str = self.client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.location.bucket, "Key": self.key(remote_path)},
            ExpiresIn=expires_s,
        )
        return url

    def object_size(self, remote_path: str) -> int | None:
        """The stored size of the file at ``remote_path`` (a HEAD), or None if absent."""
        try:
            head = self.client.head_object(Bucket=self.location.bucket, Key=self.key(remote_path))
        except Exception as exc:  # botocore's ClientError; only "no such key" means absent
            if s3_client.is_missing(exc):
                return None
            raise
        return int(head["ContentLength"])

    def open_file(self, remote_path: str) -> result_reader.StoredFile:
        """Stream an object (the :class:`~crowdsky.storage.result_reader.ResultReader`
        protocol).

        Raises
        ------
        ResultFileMissing
            No such key (or a refused path).
        ResultStoreUnavailable
            Any other S3 or connection error.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            key = self.key(remote_path)
            reply = self.client.get_object(Bucket=self.location.bucket, Key=key)
        except ValueError as exc:
            raise result_reader.ResultFileMissing(f"no result file {remote_path!r}") from exc
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                raise result_reader.ResultFileMissing(f"no result file {remote_path!r}") from exc
            raise result_reader.ResultStoreUnavailable(f"S3 GET {key}: {code}") from exc
        except BotoCoreError as exc:
            raise result_reader.ResultStoreUnavailable(f"S3 GET {key}: {exc}") from exc
        body = reply["Body"]
        size = reply.get("ContentLength")
        return result_reader.StoredFile(
            None if size is None else int(size),
            result_reader.read_chunks(body.read, body.close),
            body.close,
        )

    def presigned_get_url(self, remote_path: str, *, download_name: str, expires_s: int) -> str:
        """A GET URL valid ``expires_s`` seconds whose answer carries
        ``Content-Disposition: attachment; filename="download_name"``."""
        safe = download_name.replace('"', "").replace("\\", "")
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.location.bucket,
                "Key": self.key(remote_path),
                "ResponseContentDisposition": f'attachment; filename="{safe}"',
            },
            ExpiresIn=expires_s,
        )
        return url

    def close(self) -> None:
        """The client's connections close with it."""
