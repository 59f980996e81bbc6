"""Client file names: refuse the dangerous ones, derive a safe stored name.

A name with path traversal, an absolute path, NUL or control characters, or more
than 255 bytes is refused, saying why; an acceptable name is kept for display and
reduced to ``[A-Za-z0-9._+-]`` for disk, so no client name can escape its folder.
"""

from __future__ import annotations

import re
import unicodedata

from crowdsky.ingest.errors import InvalidFileName

MAX_NAME_BYTES = 255
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._+-]+")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


def display_name(raw: str) -> str:
    """A short printable form of a client's name for error messages."""
    cleaned = "".join(c if c.isprintable() else "?" for c in raw)
    return cleaned if len(cleaned) <= 80 else cleaned[:77] + "..."


def check_file_name(raw: str | None) -> str:
    """The basename to record for a client's file name, or :class:`InvalidFileName`.

    Raises
    ------
    InvalidFileName
        Empty, absolute, with ``..``, NUL or control characters, or over 255 bytes.
    """
    if raw is None or not raw.strip():
        raise InvalidFileName("(no name)", "the file part has no file name")
    shown = display_name(raw)
    if "\x00" in raw:
        raise InvalidFileName(shown, "file name contains a NUL byte")
    if any(unicodedata.category(c) == "Cc" for c in raw):
        raise InvalidFileName(shown, "file name contains control characters")
    if len(raw.encode("utf-8")) > MAX_NAME_BYTES:
        raise InvalidFileName(shown, f"file name is longer than {MAX_NAME_BYTES} bytes")
    if raw.startswith(("/", "\\")) or _WINDOWS_DRIVE.match(raw):
        raise InvalidFileName(shown, "file name is an absolute path; send the bare file name")
    parts = re.split(r"[\\/]", raw)
    if ".." in parts:
        raise InvalidFileName(shown, "file name contains '..'; send the bare file name")
    base = parts[-1].strip()
    if base in ("", "."):
        raise InvalidFileName(shown, "file name has no base name")
    return base


def storage_name(base: str) -> str:
    """A name safe on any file system: unsafe runs become ``_``, no leading dot."""
    safe = _UNSAFE_CHARS.sub("_", base).lstrip(".") or "frame.fits"
    return safe[:200]
