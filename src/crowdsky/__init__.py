"""CrowdSky: crowd-sourced stacking of smart-telescope frames.

Importing the package loads nothing heavy; subpackages are imported on use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
