"""UTC instants as the text the spec puts on the wire: ISO 8601 with a ``Z``.

This module owns that one format (``2025-03-27T01:20:02.5Z``), so every API reply
and record writes a moment the same way. Standard library only: any layer may use it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload

__all__ = ["format_utc"]


@overload
def format_utc(moment: datetime) -> str: ...
@overload
def format_utc(moment: None) -> None: ...
def format_utc(moment: datetime | None) -> str | None:
    """``moment`` as ISO 8601 UTC ending in ``Z``; None stays None.

    A naive datetime is taken as UTC (the database hands out aware UTC, but a
    caller's own value may be naive); an aware one in another zone is converted.
    """
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
