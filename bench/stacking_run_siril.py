"""Run Siril 1.0.6 on a list of frames as one whole process (bench helper).

Usage: ``python stacking_run_siril.py LIST_FILE OUTPUT.fits``; prints one JSON line
with the wall and CPU seconds of the ``siril-cli`` process and its peak RSS.

The frames are linked into a fresh ``lights/`` folder of a work directory beside the
output, and Siril runs the script of ``../shared/reference/stacking.md`` §6.4 (the one
the engine issue compares against): convert, ``preprocess -cfa -debayer``,
``register``, ``stack rej 3 3 -norm=addscale -output_norm``. Siril's result (a
3-plane FITS cube) is moved to ``OUTPUT``. Installs Debian's ``siril`` with apt-get
when ``siril-cli`` is missing and this process may (root).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = """requires 1.0.0
setcpu 2
cd lights
convert light -out=../process
cd ../process
preprocess light -cfa -debayer
register pp_light
stack r_pp_light rej 3 3 -norm=addscale -output_norm -out=../result
close
"""


def siril_cli() -> str:
    """Path of ``siril-cli``, installing Debian's package first if it is missing."""
    found = shutil.which("siril-cli")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "siril"],
            check=True,
            env=env,
        )
        found = shutil.which("siril-cli")
    if found is None:
        sys.exit("siril-cli not found: install Debian's siril (apt-get install siril)")
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("listing", type=Path)
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    siril = siril_cli()
    paths = [Path(line) for line in args.listing.read_text().splitlines() if line]
    work = args.output.parent / f"siril-{args.output.stem}"
    shutil.rmtree(work, ignore_errors=True)
    (work / "lights").mkdir(parents=True)
    for k, path in enumerate(paths):
        (work / "lights" / f"frame_{k:04d}.fit").symlink_to(path.resolve())
    (work / "stack.ssf").write_text(SCRIPT)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [siril, "-d", str(work), "-s", str(work / "stack.ssf")],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = work / "result.fit"
    if proc.returncode != 0 or not result.exists():
        sys.exit(f"siril failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    os.replace(result, args.output)
    stacked = None
    for line in proc.stdout.splitlines():
        if "images stacked" in line.lower() or ("stacking" in line.lower() and "/" in line):
            stacked = line.strip()
    shutil.rmtree(work, ignore_errors=True)
    print(
        json.dumps(
            {
                "wall_s": wall,
                "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
                "peak_rss_bytes": after.ru_maxrss * 1024,
                "stack_log": stacked,
            }
        )
    )


if __name__ == "__main__":
    main()
