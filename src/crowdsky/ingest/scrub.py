"""Remove the observing site from a stored FITS file without rewriting its data.

``scrub_location=1`` promises that the site coordinates are gone from the stored
file. The cards are blanked in place (80 spaces: a legal blank card), so the header
keeps its size and the pixel data are never copied, whatever the file size.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from astropy.io import fits

CARD_BYTES = 80
BLOCK_BYTES = 2880
SITE_KEYWORDS = frozenset({b"SITELAT", b"SITELONG", b"SITEELEV"})


def scrub_site_location(path: str | os.PathLike[str]) -> int:
    """Blank the SITELAT/SITELONG/SITEELEV cards of every header; returns how many."""
    file_path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(file_path, memmap=False, lazy_load_hdus=True) as hdul:
            hdul.readall()
            header_starts = [int(hdul.fileinfo(i)["hdrLoc"]) for i in range(len(hdul))]
    blanked = 0
    with file_path.open("r+b") as handle:
        for start in header_starts:
            position = start
            while True:
                handle.seek(position)
                card = handle.read(CARD_BYTES)
                if len(card) < CARD_BYTES:
                    break
                keyword = card[:8].rstrip()
                if keyword == b"END":
                    break
                if keyword in SITE_KEYWORDS:
                    handle.seek(position)
                    handle.write(b" " * CARD_BYTES)
                    blanked += 1
                position += CARD_BYTES
        handle.flush()
        os.fsync(handle.fileno())
    return blanked
