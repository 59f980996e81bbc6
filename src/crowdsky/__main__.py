"""`python -m crowdsky` runs the command line."""

from __future__ import annotations

from crowdsky.cli import main

if __name__ == "__main__":
    main()
