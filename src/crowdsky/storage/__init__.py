"""Storage: the raw-frame buffer on the server and the result stores of the workers."""

from __future__ import annotations

from crowdsky.storage.raw_store import RawStore, UnsafePath

__all__ = ["RawStore", "UnsafePath"]
