"""Median seconds of ``simulate_sequence`` on 3 frames of 480 x 270, old or new API.

Runs against whichever tree ``PYTHONPATH`` names, so the keyword API (before issue 12)
and the ``SequenceSpec`` API can be timed in one sitting; figures in docs/benchmarks.md.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import crowdsky.simulate as sim


def main(repeats: int) -> None:
    """Print the median of ``repeats`` runs, seconds."""
    times = []
    for i in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            if hasattr(sim, "SequenceSpec"):
                spec = sim.SequenceSpec(n_frames=3, seed=i, shape=(480, 270))
                sim.simulate_sequence(Path(tmp), spec)
            else:  # the keyword API of main before issue 12
                sim.simulate_sequence(Path(tmp), 3, seed=i, shape=(480, 270))
            times.append(time.perf_counter() - start)
    print(f"{statistics.median(times):.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
