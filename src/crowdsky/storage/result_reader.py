"""Reading published results back: the :class:`ResultReader` protocol and its file handle.

Workers publish stacks into a result store (a local folder, a WebDAV share, an S3
bucket); the server reads them back to answer downloads, and deletes the files of
stacks it no longer records. A reader opens one file as
a :class:`StoredFile` whose chunks are read while the reply is sent, so memory does
not grow with the stack, and says whether the store can hand the client a short-lived
URL of its own instead (S3's presigned GET) so the bytes bypass the server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

#: Chunks a reader yields while streaming a file.
READ_CHUNK_BYTES = 1024 * 1024


class ResultFileMissing(LookupError):
    """The result store has no file at this path."""


class ResultStoreUnavailable(RuntimeError):
    """The result store could not be read (down, refusing, misconfigured)."""


@dataclass
class StoredFile:
    """One result file opened for reading.

    ``chunks`` yields the bytes in order and releases the source when exhausted;
    :meth:`close` releases it early (a client that went away).
    """

    size: int | None
    chunks: Iterator[bytes]
    _release: Callable[[], None] = field(default=lambda: None, repr=False)

    def close(self) -> None:
        """Release the source (file handle, HTTP connection); repeat calls are fine."""
        release, self._release = self._release, lambda: None
        release()

    def read_all(self, max_bytes: int) -> bytes:
        """The whole file, refusing one larger than ``max_bytes``.

        Raises
        ------
        ResultStoreUnavailable
            The file is larger than ``max_bytes``.
        """
        parts: list[bytes] = []
        total = 0
        try:
            for chunk in self.chunks:
                total += len(chunk)
                if total > max_bytes:
                    raise ResultStoreUnavailable(f"the file is larger than {max_bytes} bytes")
                parts.append(chunk)
        finally:
            self.close()
        return b"".join(parts)


@runtime_checkable
class ResultReader(Protocol):
    """Somewhere published results are read from, by share-style path."""

    def open_file(self, remote_path: str) -> StoredFile:
        """Open ``remote_path`` for streaming.

        Raises
        ------
        ResultFileMissing, ResultStoreUnavailable
        """
        ...

    def presigned_get_url(
        self, remote_path: str, *, download_name: str, expires_s: int
    ) -> str | None:
        """A URL the client may fetch the file from directly (answered as an attachment
        named ``download_name``), or ``None`` when the store offers none."""
        ...

    def delete_files(self, remote_paths: Iterable[str]) -> None:
        """Delete files of stacks whose rows are gone; missing ones are not an error.

        Raises
        ------
        ResultStoreUnavailable, ValueError
            The store refused or could not be reached; a path it cannot hold.
        """
        ...

    def describe(self) -> str:
        """A log-safe one-line description of the store."""
        ...

    def close(self) -> None:
        """Release connections or handles."""
        ...


def read_chunks(read: Callable[[int], bytes], close: Callable[[], None]) -> Iterator[bytes]:
    """Yield ``read(READ_CHUNK_BYTES)`` until it returns nothing, then ``close()``."""
    try:
        while chunk := read(READ_CHUNK_BYTES):
            yield chunk
    finally:
        close()
