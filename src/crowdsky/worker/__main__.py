"""``python -m crowdsky.worker [--once]``: run the worker (see :mod:`crowdsky.worker.main`)."""

from __future__ import annotations

import sys

from crowdsky.worker.main import main

if __name__ == "__main__":
    sys.exit(main())
