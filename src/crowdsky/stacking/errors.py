"""Exceptions of the stacking engine: one root, translated at the boundary.

Hierarchy::

    StackingError
    ├── InvalidInput     a caller error: no paths, a missing file, a bad parameter
    ├── NoUsableFrames   every frame was rejected; the message lists the reasons
    └── OutputError      the result could not be written

OpenCV, sep and astropy exceptions are caught where they arise and re-raised as
one of these (``raise ... from exc``), so callers of :func:`crowdsky.stacking.stack_files`
only need to catch :class:`StackingError`. A frame that is merely unreadable or
unusable does not raise: it is recorded as rejected with a reason, because one bad
upload should not sink a whole chunk.
"""

from __future__ import annotations

__all__ = ["InvalidInput", "NoUsableFrames", "OutputError", "StackingError"]


class StackingError(Exception):
    """The stacking engine failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class InvalidInput(StackingError):
    """The input to the stacking engine is invalid."""


class NoUsableFrames(StackingError):
    """No frame could be used for the stack."""

    def __init__(self, message: str | None = None, *, reasons: list[str] | None = None) -> None:
        self.reasons = list(reasons or [])
        if message is None and self.reasons:
            message = "no usable frames: " + "; ".join(self.reasons)
        super().__init__(message)


class OutputError(StackingError):
    """The stacked result could not be written."""
