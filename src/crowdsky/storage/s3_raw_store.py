"""The raw-frame buffer on an S3 object store, for any number of API servers.

Same layout and interface as :class:`~crowdsky.storage.raw_store.RawStore`. An
:class:`S3PartialUpload` spools the bytes to a local scratch file (the FITS check
needs random access) and uploads each filled part of a multipart upload from a
thread pool, so the transfer overlaps reception and the event loop never waits;
``finish`` completes it under a hidden staging key and ``publish`` copies it to its
name. :meth:`S3RawStore.abort_stale_uploads` aborts the multipart uploads a killed
server left; :meth:`S3RawStore.download_url` presigns a GET, so raw bytes never pass
through an API server.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from crowdsky.storage import s3_client
from crowdsky.storage.raw_store import (
    PARTIAL_PREFIX,
    PartialUpload,
    RawStore,
    StoredEntry,
    UnsafePath,
    UploadTooLarge,
)

#: Background threads per server process for part uploads, copies and aborts.
TRANSFER_THREADS = 16
#: ``DeleteObjects`` takes at most this many keys per call.
DELETE_BATCH = 1000
MAX_NAME_ATTEMPTS = 10_000


class NoLocalPath(RuntimeError):
    """The S3 raw store has no local files: use the store's own methods instead."""


class S3RawStore(RawStore):
    """Files of upload sessions under one ``s3://bucket/prefix``.

    Parameters
    ----------
    client
        A boto3 S3 client (:func:`crowdsky.storage.s3_client.make_client`).
    location
        Bucket and key prefix.
    staging_dir
        Local scratch folder for files being received (per process).
    presign_seconds
        Lifetime of the URLs :meth:`download_url` hands out.
    part_bytes
        Multipart part size (at least 5 MiB).
    """

    def __init__(
        self,
        client: Any,
        location: s3_client.S3Location,
        staging_dir: Path,
        *,
        presign_seconds: int = s3_client.DEFAULT_PRESIGN_SECONDS,
        part_bytes: int = s3_client.DEFAULT_PART_BYTES,
    ) -> None:
        if part_bytes < s3_client.MIN_PART_BYTES:
            raise ValueError(f"part_bytes must be at least {s3_client.MIN_PART_BYTES}")
        staging = Path(staging_dir)
        staging.mkdir(parents=True, exist_ok=True)
        self.root = staging.resolve()
        self.client = client
        self.location = location
        self.presign_seconds = presign_seconds
        self.part_bytes = part_bytes
        self.executor = ThreadPoolExecutor(TRANSFER_THREADS, thread_name_prefix="s3-raw")

    def describe(self) -> str:
        """``s3://bucket/prefix`` (log-safe)."""
        return self.location.url

    def close(self) -> None:
        """Wait for background transfers (aborts, deletions) and stop the threads."""
        self.executor.shutdown(wait=True)

    # -- paths --------------------------------------------------------------------------

    def key(self, relative_path: str) -> str:
        """The object key of a stored relative path, refusing anything unsafe."""
        pure = PurePosixPath(relative_path)
        if (
            not relative_path
            or pure.is_absolute()
            or ".." in pure.parts
            or "\x00" in relative_path
            or "\\" in relative_path
        ):
            raise UnsafePath(f"unsafe stored path {relative_path!r}")
        return self.location.key(str(pure))

    def resolve(self, relative_path: str) -> Path:
        """Refused: objects have no local path (a caller that needs one is a bug)."""
        raise NoLocalPath(f"{relative_path!r} is an object in {self.location.url}")

    def _dir_prefix(self, relative_dir: str) -> str:
        return self.key(relative_dir).rstrip("/") + "/"

    # -- writing --------------------------------------------------------------------------

    def create_dir(self, relative_dir: str) -> None:
        """Nothing to create: a key prefix exists once an object is under it."""
        self._dir_prefix(relative_dir)

    def open_partial(self, relative_dir: str, max_bytes: int) -> S3PartialUpload:
        """Start receiving a file into a session folder (see :class:`S3PartialUpload`)."""
        return S3PartialUpload(self, relative_dir, max_bytes)

    def publish(self, partial: PartialUpload, file_name: str) -> str:
        """Copy a finished partial to its final name; returns the relative path.

        A taken name gets a numbered variant (``name-2.fit``), as on disk. Two uploads
        of *different* content with the same name into the same session at the same
        instant could both see a name free (S3 has no atomic create-if-absent that every
        gateway supports); the session's row lock, held by the caller while publishing,
        serialises publications within a session, which closes that window.
        """
        if not isinstance(partial, S3PartialUpload) or partial.store is not self:
            raise TypeError("publish takes a partial opened by this store")
        if "/" in file_name or "\\" in file_name or file_name.startswith(".") or not file_name:
            raise UnsafePath(f"unsafe file name {file_name!r}")
        if partial.staging_key is None or not partial.completed:
            raise ValueError("publish needs a finished partial")
        stem, dot, suffix = file_name.rpartition(".")
        if not dot:
            stem, suffix = file_name, ""
        candidate = file_name
        for attempt in range(2, MAX_NAME_ATTEMPTS):
            relative = f"{partial.relative_dir}/{candidate}"
            if not self.exists(relative):
                self.client.copy_object(
                    Bucket=self.location.bucket,
                    Key=self.key(relative),
                    CopySource={"Bucket": self.location.bucket, "Key": partial.staging_key},
                    MetadataDirective="REPLACE",
                    Metadata={"sha256": partial.sha256 or ""},
                    ContentType="application/octet-stream",
                )
                partial.published = True
                self.executor.submit(self._delete_keys, [partial.staging_key])
                partial.discard()
                return relative
            candidate = f"{stem}-{attempt}.{suffix}" if dot else f"{stem}-{attempt}"
        raise UnsafePath(f"no free name for {file_name!r}")

    def edit_file(self, relative_path: str, edit: Callable[[Path], object]) -> None:
        """Download the object, run ``edit`` on the local copy, upload it back."""
        key = self.key(relative_path)
        fd, name = tempfile.mkstemp(prefix=PARTIAL_PREFIX, dir=self.root)
        os.close(fd)
        try:
            self.client.download_file(self.location.bucket, key, name)
            edit(Path(name))
            self.client.upload_file(name, self.location.bucket, key)
        finally:
            Path(name).unlink(missing_ok=True)

    # -- reading ------------------------------------------------------------------------

    def exists(self, relative_path: str) -> bool:
        """Whether the object exists."""
        try:
            self.client.head_object(Bucket=self.location.bucket, Key=self.key(relative_path))
        except Exception as exc:
            if s3_client.is_missing(exc):
                return False
            raise
        return True

    def dir_exists(self, relative_dir: str) -> bool:
        """Whether any object (or unfinished upload) is left under a session folder."""
        prefix = self._dir_prefix(relative_dir)
        listed = self.client.list_objects_v2(Bucket=self.location.bucket, Prefix=prefix, MaxKeys=1)
        return bool(listed.get("KeyCount", 0)) or bool(self._multipart_uploads(prefix))

    def download_url(self, relative_path: str, filename: str) -> str | None:
        """A presigned GET of the object, valid for ``presign_seconds``."""
        safe_name = filename.replace('"', "").replace("\r", "").replace("\n", "")
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.location.bucket,
                "Key": self.key(relative_path),
                "ResponseContentType": "application/octet-stream",
                "ResponseContentDisposition": f'attachment; filename="{safe_name}"',
            },
            ExpiresIn=self.presign_seconds,
        )
        return url

    def open_object(self, relative_path: str) -> Iterator[bytes]:
        """Stream an object's bytes (for servers that proxy instead of redirecting)."""
        body = self.client.get_object(Bucket=self.location.bucket, Key=self.key(relative_path))[
            "Body"
        ]
        try:
            yield from body.iter_chunks(1024 * 1024)
        finally:
            body.close()

    # -- deleting -----------------------------------------------------------------------

    def delete_files(self, relative_paths: Iterable[str]) -> int:
        """Delete objects, ignoring ones already gone; returns how many keys were deleted."""
        return self._delete_keys([self.key(p) for p in relative_paths])

    def remove_dir_if_empty(self, relative_dir: str, *, keep_if_receiving: bool = False) -> bool:
        """Remove a session folder's leftovers if no file is left in it.

        Staging objects and unfinished multipart uploads are receptions; they are
        removed with the folder unless ``keep_if_receiving``, when any of them keeps
        it (a request may still be streaming; cleanup comes back later).
        """
        prefix = self._dir_prefix(relative_dir)
        keys = self._list_keys(prefix)
        partials = [k for k in keys if k[len(prefix) :].startswith(PARTIAL_PREFIX)]
        if len(partials) < len(keys):
            return False
        uploads = self._multipart_uploads(prefix)
        if keep_if_receiving and (partials or uploads):
            return False
        self._delete_keys(partials)
        self._abort(uploads)
        return True

    def remove_dir(self, relative_dir: str) -> int:
        """Delete everything under a session folder; returns the number of files removed."""
        prefix = self._dir_prefix(relative_dir)
        keys = self._list_keys(prefix)
        self._abort(self._multipart_uploads(prefix))
        self._delete_keys(keys)
        return sum(not k[len(prefix) :].startswith(PARTIAL_PREFIX) for k in keys)

    def abort_stale_uploads(self, older_than: datetime) -> int:
        """Abort unfinished multipart uploads started before ``older_than``; returns how many.

        These are left by a server process killed mid-upload; the store keeps their
        parts (and bills for them) until they are aborted. Scratch files that such a
        process left in ``staging_dir`` go too.
        """
        cutoff = older_than.timestamp()
        for scratch in self.root.glob(f"{PARTIAL_PREFIX}*"):
            with contextlib.suppress(OSError):
                if scratch.stat().st_mtime < cutoff:
                    scratch.unlink()
        stale = [
            (key, upload_id)
            for key, upload_id, initiated in self._multipart_uploads(self.location.prefix)
            if initiated < older_than
        ]
        self._abort([(k, u, older_than) for k, u in stale])
        return len(stale)

    # -- listing ------------------------------------------------------------------------

    def list_session_folders(self) -> list[str]:
        """Relative ``user_<id>/sess_<token>`` folders that hold at least one object."""
        prefix = self.location.key("")
        found: set[str] = set()
        for key in self._list_keys(prefix):
            parts = key[len(prefix) :].split("/")
            if len(parts) >= 3 and parts[0].startswith("user_") and parts[1].startswith("sess_"):
                found.add(f"{parts[0]}/{parts[1]}")
        return sorted(found)

    def list_folder(self, relative_dir: str) -> list[StoredEntry]:
        """The objects directly under a session folder, with their modification time."""
        prefix = self._dir_prefix(relative_dir)
        paginator = self.client.get_paginator("list_objects_v2")
        entries: list[StoredEntry] = []
        for page in paginator.paginate(Bucket=self.location.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                name = item["Key"][len(prefix) :]
                if name and "/" not in name:
                    entries.append(StoredEntry(name, item["LastModified"].timestamp()))
        return entries

    def folder_modified(self, relative_dir: str) -> float:
        """The newest object's time; infinity for a folder with no object (nothing to age)."""
        times = [e.modified for e in self.list_folder(relative_dir)]
        return max(times) if times else float("inf")

    # -- internals ----------------------------------------------------------------------

    def _list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.location.bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    def _multipart_uploads(self, prefix: str) -> list[tuple[str, str, datetime]]:
        found: list[tuple[str, str, datetime]] = []
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.location.bucket, Prefix=prefix):
            found.extend((u["Key"], u["UploadId"], u["Initiated"]) for u in page.get("Uploads", []))
        return found

    def _abort(self, uploads: Iterable[tuple[str, str, datetime]]) -> None:
        for key, upload_id, _ in uploads:
            with contextlib.suppress(Exception):  # already completed or aborted elsewhere
                self.client.abort_multipart_upload(
                    Bucket=self.location.bucket, Key=key, UploadId=upload_id
                )

    def _delete_keys(self, keys: list[str]) -> int:
        deleted = 0
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            reply = self.client.delete_objects(
                Bucket=self.location.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": False},
            )
            deleted += len(reply.get("Deleted", []))
        return deleted


class S3PartialUpload(PartialUpload):
    """A file being received into the store: scratch file, hash, background part uploads.

    The interface of :class:`~crowdsky.storage.raw_store.PartialUpload`: ``write``,
    ``finish`` (returns the SHA-256), ``discard``, ``size`` and ``path`` (the local
    scratch copy, for the header check).
    """

    def __init__(  # the local partial's constructor opens a file in place: not called
        self, store: S3RawStore, relative_dir: str, max_bytes: int
    ) -> None:
        self.store = store
        self.relative_dir = relative_dir
        self.max_bytes = max_bytes
        self.size = 0
        self.sha256: str | None = None
        self.staging_key: str | None = (
            f"{store._dir_prefix(relative_dir)}{PARTIAL_PREFIX}{secrets.token_hex(12)}"
        )
        self.completed = False
        self.published = False
        self._hash = hashlib.sha256()
        fd, name = tempfile.mkstemp(prefix=PARTIAL_PREFIX, dir=store.root)
        self.path = Path(name)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self._sent_bytes = 0  # bytes handed to part uploads so far
        self._parts: list[Future[dict[str, Any]]] = []
        self._upload_id: str | None = None
        self._id_lock = threading.Lock()
        self._discarded = False

    def write(self, data: bytes) -> None:
        """Append bytes, hashing them; full parts start uploading in the background."""
        if self._file is None:
            raise ValueError("write to a closed upload")
        self.size += len(data)
        if self.size > self.max_bytes:
            raise UploadTooLarge(f"more than {self.max_bytes} bytes")
        self._hash.update(data)
        self._file.write(data)
        part = self.store.part_bytes
        while self.size - self._sent_bytes >= part:
            self._file.flush()  # the part thread reads the scratch file
            self._submit_part(self._sent_bytes, part)
            self._sent_bytes += part

    def finish(self) -> str:
        """Upload the last part and complete the upload: the bytes are durable in the store.

        Returns the hex SHA-256 of everything written. Blocks (run it in a thread).
        """
        if self._file is None:
            raise ValueError("finish on a closed upload")
        self._file.flush()
        if self.size > self._sent_bytes or not self._parts:
            self._submit_part(self._sent_bytes, self.size - self._sent_bytes)
            self._sent_bytes = self.size
        self._file.close()
        self._file = None
        parts = [future.result() for future in self._parts]
        self.store.client.complete_multipart_upload(
            Bucket=self.store.location.bucket,
            Key=self.staging_key,
            UploadId=self._ensure_upload_id(),
            MultipartUpload={"Parts": parts},
        )
        self.completed = True
        self.sha256 = self._hash.hexdigest()
        return self.sha256

    def discard(self) -> None:
        """Remove the scratch file; abort or delete the staging upload in the background.

        Safe to call more than once and from the event loop (it never waits on S3).
        """
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if self._discarded or self.published:
            self._discarded = True
            return
        self._discarded = True
        if self.completed:
            assert self.staging_key is not None
            self.store.executor.submit(self.store._delete_keys, [self.staging_key])
        elif self._parts or self._upload_id is not None:
            self.store.executor.submit(self._abort_after_parts)

    # -- internals ----------------------------------------------------------------------

    def _ensure_upload_id(self) -> str:
        with self._id_lock:
            if self._upload_id is None:
                reply = self.store.client.create_multipart_upload(
                    Bucket=self.store.location.bucket,
                    Key=self.staging_key,
                    ContentType="application/octet-stream",
                )
                self._upload_id = str(reply["UploadId"])
            return self._upload_id

    def _submit_part(self, offset: int, length: int) -> None:
        number = len(self._parts) + 1
        self._parts.append(self.store.executor.submit(self._upload_part, number, offset, length))

    def _upload_part(self, number: int, offset: int, length: int) -> dict[str, Any]:
        upload_id = self._ensure_upload_id()
        with open(self.path, "rb") as source:
            source.seek(offset)
            body = source.read(length)
        if len(body) != length:
            raise OSError(f"scratch file shorter than expected ({len(body)} < {length})")
        reply = self.store.client.upload_part(
            Bucket=self.store.location.bucket,
            Key=self.staging_key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
        )
        return {"PartNumber": number, "ETag": reply["ETag"]}

    def _abort_after_parts(self) -> None:
        for future in self._parts:
            with contextlib.suppress(Exception):
                future.result()
        if self._upload_id is not None:
            self.store._abort([(str(self.staging_key), self._upload_id, datetime.min)])
