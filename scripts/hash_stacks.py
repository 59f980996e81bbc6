"""Print a SHA-256 per stacked output and per HDU as JSON, to prove a change bit-identical.

Stacks frame sets with :func:`crowdsky.stacking.stack_files` and digests every HDU of
each output: its data (pixel planes, FOOTPRINT, STAR-TAB, FRAMES) and its header cards,
leaving out the cards that name a time of writing or a software version (``DATE``,
``SWCREATE``, checksums). Run it before and after a change to the engine and compare::

    python scripts/hash_stacks.py > before.json     # on the old commit
    python scripts/hash_stacks.py | diff before.json -

The default sets cover the three frame stores and both demosaic paths: the first 15
real M 94 frames (RAM float32), all 32 (RAM float16), 15 under the smallest memory
limit (float16 scratch file), 8 combined by median after a bilinear demosaic, and a
seeded simulated sequence of 20 frames (more than the 16 of the sorting network) with a
satellite trail, a cloudy, a foreign, a hot-pixels-only and a smeared frame. Give
``FRAMES`` to stack only those files instead.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REAL_DIR = ROOT.parent / "shared" / "data" / "seestar-s50-m94"
SMALLEST_MEMORY_LIMIT_BYTES = 64 * 1024 * 1024
SIMULATION_SEED = 12
EXCLUDED_CARDS = frozenset({"DATE", "SWCREATE", "CHECKSUM", "DATASUM"})
"""Cards that change with the time of writing or the software version, not the stack."""


def digest_stack(path: Path) -> dict[str, str]:
    """SHA-256 of each HDU's data and of its header cards (``EXCLUDED_CARDS`` left out)."""
    from astropy.io import fits

    digests: dict[str, str] = {}
    with fits.open(path) as hdus:
        for index, hdu in enumerate(hdus):
            name = f"{index}:{hdu.name}"
            cards = [
                repr((card.keyword, card.value, card.comment))
                for card in hdu.header.cards
                if card.keyword not in EXCLUDED_CARDS
            ]
            digests[f"{name}:header"] = hashlib.sha256("\n".join(cards).encode()).hexdigest()
            if hdu.data is not None:
                data = hdu.data.tobytes() if hasattr(hdu.data, "tobytes") else bytes(hdu.data)
                digests[f"{name}:data"] = hashlib.sha256(data).hexdigest()
    return digests


def simulated_frames(folder: Path) -> list[Path]:
    """A seeded sequence of 20 small frames with one of each special frame."""
    from crowdsky.simulate import FrameEvents, SequenceSpec, StarFieldModel, simulate_sequence

    events = FrameEvents(
        satellite_frames=(3,),
        cloudy_frames=(5,),
        foreign_frames=(8,),
        hot_pixels_only_frames=(11,),
        smeared_frames=(14,),
    )
    spec = SequenceSpec(
        n_frames=20,
        seed=SIMULATION_SEED,
        shape=(640, 360),
        stars=StarFieldModel(n_stars=120),
        events=events,
    )
    return list(simulate_sequence(folder, spec).paths)


def default_cases(data_dir: Path) -> dict[str, Callable[[Path], tuple[list[Path], Any]]]:
    """Name -> function of a work folder giving (frames, StackParams) to stack."""
    from crowdsky.stacking import StackParams

    real = sorted(data_dir.glob("*.fit*"))

    def real_set(count: int, **params: Any) -> Callable[[Path], tuple[list[Path], Any]]:
        def frames(_work: Path) -> tuple[list[Path], Any]:
            if len(real) < count:
                sys.exit(f"need {count} frames in {data_dir}, found {len(real)}")
            return real[:count], StackParams(**params)

        return frames

    def simulated(work: Path) -> tuple[list[Path], Any]:
        return simulated_frames(work / "simulated"), StackParams()

    return {
        "m94-15": real_set(15),
        "m94-32": real_set(32),
        "m94-15-scratch-file": real_set(15, memory_limit_bytes=SMALLEST_MEMORY_LIMIT_BYTES),
        "m94-8-median-bilinear": real_set(8, method="median", demosaic="bilinear"),
        "simulated-20": simulated,
    }


def main() -> None:
    """Stack every set in a temporary folder and print the digests."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("frames", nargs="*", type=Path, help="stack only these frames")
    parser.add_argument(
        "--data", type=Path, default=REAL_DIR, help="folder of the real frames (default: M 94)"
    )
    parser.add_argument("--case", action="append", help="run only this default set (repeatable)")
    args = parser.parse_args()
    from crowdsky.stacking import StackParams, stack_files

    if args.frames:
        cases = {"given": lambda _work: (list(args.frames), StackParams())}
    else:
        cases = default_cases(args.data)
        if args.case:
            cases = {name: cases[name] for name in args.case}
    digests: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, make in cases.items():
            frames, params = make(work)
            output = work / f"{name}.fits"
            stack_files(frames, output, params=params)
            digests[name] = digest_stack(output)
    json.dump(digests, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
