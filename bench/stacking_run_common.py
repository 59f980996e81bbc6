"""Process figures shared by the stacking bench runners (standard library only: the
seestarpy runner imports it from its own virtual environment)."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_bytes() -> int:
    """This process's peak RSS (VmHWM, reset by exec; ru_maxrss is not)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def process_figures() -> dict[str, float]:
    """CPU seconds (user + system) and bytes written so far by this process."""
    io_counts = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return {
        "cpu_s": float(sum(resource.getrusage(resource.RUSAGE_SELF)[:2])),
        "write_bytes": float(io_counts.get("write_bytes", 0)),
    }
