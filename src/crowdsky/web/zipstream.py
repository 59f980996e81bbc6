"""A ZIP archive written while it is sent: no temporary file, memory bounded by one read.

:mod:`zipfile` writes to an unseekable stream (it then puts sizes in data descriptors
after each member); :class:`_Pipe` hands whatever it wrote to the generator, which
yields it. FITS stacks barely compress, so members are stored; ZIP64 is forced so a
selection larger than 4 GiB is still valid.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

READ_BYTES = 1024 * 1024


class _Pipe:
    """A write-only, unseekable file object whose written bytes are collected."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def stream_zip(members: Iterable[tuple[str, Path]]) -> Iterator[bytes]:
    """Yield a ZIP of ``(name in archive, file)`` pairs, piece by piece.

    Names that repeat get ``-2``, ``-3``... before the extension.
    """
    pipe = _Pipe()
    seen: set[str] = set()
    with zipfile.ZipFile(pipe, mode="w", compression=zipfile.ZIP_STORED) as archive:  # type: ignore[arg-type]
        for name, path in members:
            unique = _unique(name, seen)
            info = zipfile.ZipInfo.from_file(path, arcname=unique)
            info.compress_type = zipfile.ZIP_STORED
            with open(path, "rb") as source, archive.open(info, "w", force_zip64=True) as target:
                while chunk := source.read(READ_BYTES):
                    target.write(chunk)
                    yield pipe.take()
            yield pipe.take()
    yield pipe.take()


def _unique(name: str, seen: set[str]) -> str:
    candidate, n = name, 1
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    while candidate in seen:
        n += 1
        candidate = f"{stem}-{n}.{ext}" if dot else f"{stem}-{n}"
    seen.add(candidate)
    return candidate
