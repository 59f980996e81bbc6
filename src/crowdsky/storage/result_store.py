"""Result stores: where finished stacks are published. The protocol and the local folder.

A :class:`ResultStore` takes share-style POSIX paths (``/crowdsky/stacks/...``, see
:mod:`crowdsky.storage.result_paths`) and offers the three operations of the
original worker's WebDAV module: ``mkcol``, ``upload_file`` and ``delete_files``.
The WebDAV implementation (a Nextcloud public share) lives with the worker in
``crowdsky.worker.webdav``; :class:`LocalResultStore` is the single-machine default,
writing into a folder that the embedded server can serve.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

from crowdsky.storage import result_reader

COPY_CHUNK_BYTES = 1024 * 1024


@runtime_checkable
class ResultStore(Protocol):
    """Somewhere to publish result files under share-style paths."""

    def mkcol(self, remote_path: str) -> None:
        """Create the folder ``remote_path`` and its parents; existing ones are fine."""
        ...

    def upload_file(
        self,
        local_path: Path | str,
        remote_path: str,
        *,
        on_bytes: Callable[[int], None] | None = None,
    ) -> int:
        """Publish ``local_path`` at ``remote_path`` (replacing it); return bytes written."""
        ...

    def delete_files(self, remote_paths: Iterable[str]) -> None:
        """Remove files; missing ones are not an error."""
        ...

    def describe(self) -> str:
        """A log-safe one-line description of the store."""
        ...

    def close(self) -> None:
        """Release connections or handles."""
        ...


class LocalResultStore:
    """Results in a local folder: ``<root>/<remote path>``.

    Writes go to a temporary file in the target folder and are renamed into place,
    so a reader never sees half a stack and a retried job replaces its file
    atomically.

    Parameters
    ----------
    root
        The folder that stands for the share's root.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()

    def path_for(self, remote_path: str) -> Path:
        """The local file for a share-style path; refuses to leave ``root``."""
        parts = [p for p in remote_path.replace("\\", "/").split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise ValueError(f"refusing a path with '.' or '..' segments: {remote_path!r}")
        return self.root.joinpath(*parts)

    def describe(self) -> str:
        """``local <root>``."""
        return f"local {self.root}"

    def mkcol(self, remote_path: str) -> None:
        """Create the folder and its parents."""
        self.path_for(remote_path).mkdir(parents=True, exist_ok=True)

    def upload_file(
        self,
        local_path: Path | str,
        remote_path: str,
        *,
        on_bytes: Callable[[int], None] | None = None,
    ) -> int:
        """Copy ``local_path`` to its place under ``root`` atomically; return the size."""
        target = self.path_for(remote_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        written = 0
        try:
            with open(local_path, "rb") as src, os.fdopen(fd, "wb") as dst:
                while chunk := src.read(COPY_CHUNK_BYTES):
                    dst.write(chunk)
                    written += len(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return written

    def delete_files(self, remote_paths: Iterable[str]) -> None:
        """Remove files; missing ones are ignored."""
        for remote_path in remote_paths:
            self.path_for(remote_path).unlink(missing_ok=True)

    def close(self) -> None:
        """Nothing to release."""

    def open_file(self, remote_path: str) -> result_reader.StoredFile:
        """Open a published file for streaming (the :class:`ResultReader` protocol).

        Raises
        ------
        ResultFileMissing
            No such file, or a path that would leave ``root``.
        """
        try:
            path = self.path_for(remote_path)
            handle = open(path, "rb")  # noqa: SIM115 -- closed by the StoredFile
        except (ValueError, OSError) as exc:
            raise result_reader.ResultFileMissing(f"no result file {remote_path!r}") from exc
        size = os.fstat(handle.fileno()).st_size
        return result_reader.StoredFile(
            size, result_reader.read_chunks(handle.read, handle.close), handle.close
        )

    def presigned_get_url(
        self, remote_path: str, *, download_name: str, expires_s: int
    ) -> str | None:
        """A folder has no URLs of its own: always ``None``."""
        return None

    def remove_tree(self, remote_path: str) -> None:
        """Remove a folder and its contents (tests and admin clean-up)."""
        shutil.rmtree(self.path_for(remote_path), ignore_errors=True)
