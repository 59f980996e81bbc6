"""The raw-frame buffer on the server's disk: where uploaded sub-frames wait for their job.

Layout: ``<uploads dir>/user_<id>/sess_<token>/<file name>``. The database stores
paths relative to the uploads dir, so a data dir can move, and nothing outside the
uploads dir can ever be addressed: every relative path is resolved and checked.
Deletion happens only after the database transaction that made a file unneeded has
committed; a crash in between leaves a file marked deleted that cleanup removes later.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO


class UnsafePath(ValueError):
    """A stored or requested path points outside the uploads dir."""


class RawStore:
    """Files of upload sessions under one uploads dir."""

    def __init__(self, uploads_dir: Path) -> None:
        self.root = Path(uploads_dir).resolve()

    def session_dir(self, user_id: int, session_token: str) -> str:
        """Relative folder of one upload session."""
        return f"user_{int(user_id)}/sess_{session_token}"

    def resolve(self, relative_path: str) -> Path:
        """Absolute path of a stored relative path, refusing anything that escapes the root."""
        pure = PurePosixPath(relative_path)
        if pure.is_absolute() or ".." in pure.parts or "\x00" in relative_path:
            raise UnsafePath(f"unsafe stored path {relative_path!r}")
        path = (self.root / pure).resolve()
        if path != self.root and self.root not in path.parents:
            raise UnsafePath(f"path {relative_path!r} escapes the uploads dir")
        return path

    def open_partial(self, relative_dir: str, max_bytes: int) -> PartialUpload:
        """Start receiving a file into a session folder (see :class:`PartialUpload`)."""
        return PartialUpload(self, relative_dir, max_bytes)

    def publish(self, partial: PartialUpload, file_name: str) -> str:
        """Give a finished partial its final name atomically; returns the relative path.

        ``file_name`` must be a plain safe name. When it is taken, a numbered variant
        (``name-2.fit``) is used: a hard link never replaces an existing file.
        """
        if "/" in file_name or "\\" in file_name or file_name.startswith(".") or not file_name:
            raise UnsafePath(f"unsafe file name {file_name!r}")
        directory = partial.path.parent
        stem, dot, suffix = file_name.rpartition(".")
        if not dot:
            stem, suffix = file_name, ""
        candidate = file_name
        for attempt in range(2, 10_000):
            try:
                os.link(partial.path, directory / candidate)
            except FileExistsError:
                candidate = f"{stem}-{attempt}.{suffix}" if dot else f"{stem}-{attempt}"
                continue
            partial.discard()
            return f"{partial.relative_dir}/{candidate}"
        raise UnsafePath(f"no free name for {file_name!r}")

    def exists(self, relative_path: str) -> bool:
        """Whether the file is on disk."""
        return self.resolve(relative_path).is_file()

    def delete_files(self, relative_paths: Iterable[str]) -> int:
        """Delete files, ignoring ones already gone; returns how many were removed."""
        removed = 0
        for relative in relative_paths:
            with contextlib.suppress(FileNotFoundError):
                self.resolve(relative).unlink()
                removed += 1
        return removed

    def remove_dir_if_empty(self, relative_dir: str, *, keep_if_receiving: bool = False) -> bool:
        """Remove a session folder (and an emptied user folder) if nothing is left in it.

        Partial uploads left in it are deleted with it (an abandoned upload), unless
        ``keep_if_receiving``: then a folder with one is kept, because an upload may
        still be streaming into it (the request will find its session closed).
        """
        path = self.resolve(relative_dir)
        try:
            entries = list(path.iterdir())
        except FileNotFoundError:
            return False
        partials = [p for p in entries if p.name.startswith(PARTIAL_PREFIX)]
        if len(partials) < len(entries) or (keep_if_receiving and partials):
            return False
        # Only the stale partial uploads seen above go: a file that arrived since is not
        # in the snapshot and makes the rmdir below fail, which keeps the folder.
        for partial in partials:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        with contextlib.suppress(OSError):
            path.rmdir()
        parent = path.parent
        if parent != self.root:
            with contextlib.suppress(OSError):
                parent.rmdir()  # only succeeds when the user folder is empty
        return not path.exists()

    def remove_dir(self, relative_dir: str) -> int:
        """Delete a whole session folder and its files; returns the number of files removed."""
        path = self.resolve(relative_dir)
        removed = 0
        if not path.is_dir():
            return 0
        for entry in path.iterdir():
            if entry.is_file():
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                    removed += 1
        with contextlib.suppress(OSError):
            os.rmdir(path)
        with contextlib.suppress(OSError):
            os.rmdir(path.parent)
        return removed

    # -- operations an object store implements differently (see storage.s3_raw_store) ----

    def create_dir(self, relative_dir: str) -> None:
        """Make a session folder ready for files."""
        self.resolve(relative_dir).mkdir(parents=True, exist_ok=True)

    def dir_exists(self, relative_dir: str) -> bool:
        """Whether anything of a session folder is left."""
        return self.resolve(relative_dir).is_dir()

    def edit_file(self, relative_path: str, edit: Callable[[Path], object]) -> None:
        """Run ``edit`` on the stored file in place (e.g. scrubbing header cards)."""
        edit(self.resolve(relative_path))

    def download_url(self, relative_path: str, filename: str) -> str | None:
        """A URL a worker may fetch the file from directly; ``None``: serve it ourselves."""
        return None

    def abort_stale_uploads(self, older_than: datetime) -> int:
        """Abort receptions started before ``older_than``; local partials go with their folder."""
        return 0

    # -- listing, for cleanup's reconciliation of the buffer with the rows ------------------

    def list_session_folders(self) -> list[str]:
        """Relative ``user_<id>/sess_<token>`` folders present in the store."""
        found: list[str] = []
        if not self.root.is_dir():
            return found
        for user_dir in self.root.iterdir():
            if not (user_dir.is_dir() and user_dir.name.startswith("user_")):
                continue
            found.extend(
                f"{user_dir.name}/{d.name}"
                for d in user_dir.iterdir()
                if d.is_dir() and d.name.startswith("sess_")
            )
        return found

    def list_folder(self, relative_dir: str) -> list[StoredEntry]:
        """The files of one session folder (partials included) with their modification time."""
        path = self.resolve(relative_dir)
        entries: list[StoredEntry] = []
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for entry in path.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    if entry.is_file():
                        entries.append(StoredEntry(entry.name, entry.stat().st_mtime))
        return entries

    def folder_modified(self, relative_dir: str) -> float:
        """When a folder last changed (epoch seconds); infinity when it is gone."""
        try:
            return self.resolve(relative_dir).stat().st_mtime
        except FileNotFoundError:
            return float("inf")


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """One file of a session folder as the store lists it."""

    name: str
    modified: float  # epoch seconds


# -- streaming writer (upload intake) ------------------------------------------------------

#: Partial uploads are hidden files with this prefix inside the session folder.
PARTIAL_PREFIX = ".upload-"


class UploadTooLarge(ValueError):
    """More bytes arrived than the per-file limit allows."""


class PartialUpload:
    """A file being received: written to a hidden temporary name, hashed as it grows.

    Nothing under its final name is visible until :meth:`RawStore.publish` links it
    there in one step, so a reader never sees half a file. Memory use is one chunk,
    whatever the file size.
    """

    def __init__(self, store: RawStore, relative_dir: str, max_bytes: int) -> None:
        directory = store.resolve(relative_dir)
        directory.mkdir(parents=True, exist_ok=True)
        self.relative_dir = relative_dir
        self.max_bytes = max_bytes
        self.size = 0
        self._hash = hashlib.sha256()
        fd, name = tempfile.mkstemp(prefix=PARTIAL_PREFIX, dir=directory)
        self.path = Path(name)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        """Append bytes, hashing them; raises :class:`UploadTooLarge` past the limit."""
        if self._file is None:
            raise ValueError("write to a closed upload")
        self.size += len(data)
        if self.size > self.max_bytes:
            raise UploadTooLarge(f"more than {self.max_bytes} bytes")
        self._hash.update(data)
        self._file.write(data)

    def finish(self) -> str:
        """Flush and fsync the data; returns the hex SHA-256 of everything written."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
        return self._hash.hexdigest()

    def discard(self) -> None:
        """Close and remove the temporary file (safe to call more than once)."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
