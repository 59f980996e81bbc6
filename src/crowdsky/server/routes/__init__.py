"""One router per API surface."""

from __future__ import annotations
