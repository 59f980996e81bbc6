"""A ZIP archive written while it is sent: no temporary file, memory bounded by one read.

:mod:`zipfile` writes to an unseekable stream (it then puts sizes in data descriptors
after each member); :class:`_Pipe` hands whatever it wrote to the generator, which
yields it. FITS stacks barely compress, so members are stored; ZIP64 is forced so a
selection larger than 4 GiB is still valid. Members are read while they are
written, from any source (a result store streams them); one whose source is gone by
then (``LookupError``) is left out and named in a final ``MISSING.txt``.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable, Iterable, Iterator

#: A member's source: called when the member is written, yields its bytes.
MemberSource = Callable[[], Iterable[bytes]]
MISSING_NAME = "MISSING.txt"


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


def stream_zip(members: Iterable[tuple[str, MemberSource]]) -> Iterator[bytes]:
    """Yield a ZIP of ``(name in archive, source)`` pairs, piece by piece.

    Names that repeat get ``-2``, ``-3``... before the extension. A source that raises
    ``LookupError`` when opened is skipped and listed in ``MISSING.txt``.
    """
    pipe = _Pipe()
    seen: set[str] = set()
    missing: list[str] = []
    stamp = time.gmtime()[:6]
    with zipfile.ZipFile(pipe, mode="w", compression=zipfile.ZIP_STORED) as archive:  # type: ignore[arg-type]
        for name, source in members:
            try:
                chunks = source()
            except LookupError:
                missing.append(name)
                continue
            info = zipfile.ZipInfo(_unique(name, seen), date_time=stamp)
            info.compress_type = zipfile.ZIP_STORED
            with archive.open(info, "w", force_zip64=True) as target:
                for chunk in chunks:
                    target.write(chunk)
                    yield pipe.take()
            yield pipe.take()
        if missing:
            note = "Not in the result store any more:\n" + "".join(f"{n}\n" for n in missing)
            archive.writestr(_unique(MISSING_NAME, seen), note)
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
