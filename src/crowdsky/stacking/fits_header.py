"""Reading FITS headers: the one card reader of CrowdSky (engine, worker and intake).

Three readers once did this (issue 12): astropy in ``ingest.fits_headers``, a block
scan for END in ``worker.stacking_adapter`` and this card parser in ``stacking.io``.
This one stays because the engine needs its speed: it reads a frame's header in
~0.1 ms without importing astropy (~0.2 s per process). The intake's validation and the
worker's check of downloaded raws call it too.

:func:`read_header` reads one header (whole 2880-byte blocks up to END) from an open
file; :func:`walk_hdus` reads every HDU's header of a file with where its data start
and how many bytes they take, which is what checking a file's structure needs.
:class:`CardHeader` parses the cards as the FITS standard writes them: quoted strings
with doubled quotes, ``CONTINUE`` long strings, ``T``/``F``, integers, floats (also
with a ``D`` exponent), comments after ``/``; a keyword's first card wins. A card it
cannot parse keeps its value text as a string; an empty value reads as ``''``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "BLOCK_BYTES",
    "CARD_BYTES",
    "CardHeader",
    "HeaderUnit",
    "data_bytes",
    "read_header",
    "walk_hdus",
]

BLOCK_BYTES = 2880
CARD_BYTES = 80
MAX_HEADER_BLOCKS = 200
"""A header longer than this (7,200 cards) is not a frame's; reading stops."""


class CardHeader:
    """The values and comments of a header's cards (not astropy; see module docstring).

    Offers what the engine, the worker and the intake use of a header: ``get``,
    ``in``, ``[]``, :meth:`comment`, iteration over keywords in order, :meth:`items`,
    :attr:`nbytes` (the header's size in the file, whole blocks) and
    :meth:`to_astropy` for code that wants astropy's full header.
    """

    __slots__ = ("_comments", "_raw", "_values", "nbytes")

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        self.nbytes = len(raw)
        self._values: dict[str, object] = {}
        self._comments: dict[str, str] = {}
        pending: str | None = None  # keyword of a string still being CONTINUEd
        for i in range(0, len(raw), CARD_BYTES):
            card = raw[i : i + CARD_BYTES].decode("ascii", "replace")
            key = card[:8].strip()
            if key == "END":
                break
            if key == "CONTINUE" and pending is not None:
                text, comment = _parse_value(card[8:])
                value = self._values[pending]
                if isinstance(text, str) and isinstance(value, str) and value.endswith("&"):
                    # trailing blanks of a string are not significant (as a card's own)
                    self._values[pending] = (value[:-1] + text).rstrip()
                    if comment:
                        self._comments[pending] = comment
                    if not text.endswith("&"):
                        pending = None
                    continue
            pending = None
            if card[8:10] != "= " or not key or key in self._values:
                continue
            value, comment = _parse_value(card[10:])
            self._values[key] = value
            self._comments[key] = comment
            if isinstance(value, str) and value.endswith("&"):
                pending = key

    @classmethod
    def merged(cls, own: CardHeader, inherited: CardHeader, skip: Any) -> CardHeader:
        """``own``'s cards plus those of ``inherited`` whose keyword ``own`` lacks and
        ``skip(keyword)`` does not refuse (an image extension and its primary header)."""
        out = cls(b"")
        out._raw = own._raw
        out.nbytes = own.nbytes
        out._values = dict(own._values)
        out._comments = dict(own._comments)
        for key, value in inherited._values.items():
            if key not in out._values and not skip(key):
                out._values[key] = value
                out._comments[key] = inherited._comments.get(key, "")
        return out

    def get(self, key: str, default: object = None) -> object:
        """Value of a keyword (str, bool, int or float), or ``default``."""
        return self._values.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __getitem__(self, key: str) -> object:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def items(self) -> Iterator[tuple[str, object]]:
        """(keyword, value) pairs in the order of the cards."""
        return iter(self._values.items())

    def comment(self, key: str) -> str:
        """The comment of a keyword ('' if none)."""
        return self._comments.get(key, "")

    def to_astropy(self) -> Any:
        """The same header as an ``astropy.io.fits.Header``."""
        from astropy.io import fits

        return fits.Header.fromstring(self._raw.decode("ascii", "replace"))


def _parse_value(text: str) -> tuple[object, str]:
    text = text.rstrip()
    stripped = text.lstrip()
    if stripped.startswith("'"):
        out, i = [], 1
        while i < len(stripped):
            ch = stripped[i]
            if ch == "'":
                if stripped[i + 1 : i + 2] == "'":
                    out.append("'")
                    i += 2
                    continue
                break
            out.append(ch)
            i += 1
        rest = stripped[i + 1 :]
        comment = rest.split("/", 1)[1].strip() if "/" in rest else ""
        return "".join(out).rstrip(), comment
    raw, _, comment = stripped.partition("/")
    raw = raw.strip()
    value: object
    if raw == "T":
        value = True
    elif raw == "F":
        value = False
    else:
        try:
            value = int(raw)
        except ValueError:
            try:
                value = float(raw.replace("D", "E"))
            except ValueError:
                value = raw
    return value, comment.strip()


def read_header(handle: BinaryIO, *, first: bool = True) -> CardHeader | None:
    """The header at the handle's position (whole blocks up to END), or None if the
    file ends first or it is not a FITS header (``first``: must start ``SIMPLE  =``;
    otherwise ``XTENSION=``). The handle is left at the start of the data."""
    chunks: list[bytes] = []
    start = b"SIMPLE  =" if first else b"XTENSION="
    while len(chunks) < MAX_HEADER_BLOCKS:
        block = handle.read(BLOCK_BYTES)
        if len(block) < BLOCK_BYTES:
            return None
        if not chunks and not block.startswith(start):
            return None
        chunks.append(block)
        for i in range(0, BLOCK_BYTES, CARD_BYTES):
            if block[i : i + 8] == b"END     ":
                return CardHeader(b"".join(chunks))
    return None


def data_bytes(header: CardHeader) -> int:
    """Bytes of data that follow ``header`` (FITS 4.0 §4.4.1: |BITPIX| / 8 × GCOUNT ×
    (PCOUNT + NAXIS1 × … × NAXISn)), before padding to whole blocks.

    Raises
    ------
    ValueError
        BITPIX or an axis is missing or not an integer.
    """
    naxis = _integer(header, "NAXIS")
    if naxis == 0:
        return 0
    axes = [_integer(header, f"NAXIS{i}") for i in range(1, naxis + 1)]
    bitpix = _integer(header, "BITPIX")
    pcount = header.get("PCOUNT", 0)
    gcount = header.get("GCOUNT", 1)
    if not isinstance(pcount, int) or not isinstance(gcount, int):
        raise ValueError("PCOUNT and GCOUNT must be integers")
    return abs(bitpix) // 8 * gcount * (pcount + math.prod(axes))


def _integer(header: CardHeader, key: str) -> int:
    value = header.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key} is missing or not an integer")
    return value


@dataclass(frozen=True, slots=True)
class HeaderUnit:
    """One HDU of a file: its header, where its data start, and their size in bytes."""

    index: int
    header: CardHeader
    data_offset: int
    data_bytes: int

    @property
    def extension(self) -> str | None:
        """XTENSION ('IMAGE', 'BINTABLE', 'TABLE', …), None for the primary HDU."""
        value = self.header.get("XTENSION")
        return value.strip().upper() if isinstance(value, str) else None


def walk_hdus(path: Path) -> Iterator[HeaderUnit]:
    """Every HDU of a FITS file, in order; stops at the end of the file or at anything
    after the last HDU that is not an extension header.

    Raises
    ------
    ValueError
        The primary header is not FITS or is incomplete, or a header's structure
        keywords are missing or not integers.
    """
    with open(path, "rb") as handle:
        header = read_header(handle)
        if header is None:
            raise ValueError("no complete FITS header (SIMPLE ... END) at the start")
        offset, index = 0, 0
        while header is not None:
            data_offset = offset + header.nbytes
            size = data_bytes(header)
            yield HeaderUnit(index, header, data_offset, size)
            offset = data_offset + -(-size // BLOCK_BYTES) * BLOCK_BYTES
            handle.seek(offset)
            header = read_header(handle, first=False)
            index += 1
