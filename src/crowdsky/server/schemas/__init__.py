"""Request and response models at the HTTP edge, in the spec's exact JSON shapes."""

from __future__ import annotations
