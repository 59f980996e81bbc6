"""The raw-frame buffer on the server's disk: where uploaded sub-frames wait for their job.

Layout: ``<uploads dir>/user_<id>/sess_<token>/<file name>``. The database stores
paths relative to the uploads dir, so a data dir can move, and nothing outside the
uploads dir can ever be addressed: every relative path is resolved and checked.
Deletion happens only after the database transaction that made a file unneeded has
committed; a crash in between leaves a file marked deleted that cleanup removes later.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath


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

    def remove_dir_if_empty(self, relative_dir: str) -> bool:
        """Remove a session folder (and an emptied user folder) if nothing is left in it."""
        path = self.resolve(relative_dir)
        try:
            leftovers = [p for p in path.iterdir() if not p.name.startswith(".upload-")]
        except FileNotFoundError:
            return False
        if leftovers:
            return False
        for partial in path.iterdir():  # stale partial uploads of an abandoned session
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
