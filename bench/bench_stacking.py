"""Stacking benchmark: CrowdSky's engine against the original seestarpy 0.1.3 stacker.

In one run on this machine:

* **Real frames** (``../shared/data/seestar-s50-m94``, the first 15 and all 32):
  CrowdSky's ``stack_files`` and seestarpy 0.1.3's
  ``FrameCollection(paths).process(method="mean", sigma_clip=3.0)`` + ``save``, each
  in its own subprocess. seestarpy is installed with pip into a separate virtual
  environment under the work directory (``--work-dir``, outside the repository).
  Also CrowdSky variants (``--variants``), by default the previous resampling
  (bilinear demosaic, then the blended cubic/linear warp, no low-pass) and the
  current one without the final low-pass.
* **Siril 1.0.6** (Debian's ``siril``, installed with apt-get by the runner when
  missing) on the same real frames, as one whole ``siril-cli`` process with the
  script of ``../shared/reference/stacking.md`` §6.4 (``preprocess -cfa -debayer``,
  ``register``, ``stack rej 3 3 -norm=addscale``): its wall time against the whole
  ``crowdsky stack`` process (the console script, run as users run it), and its
  output measured by ``bench/measure_sharpness.py`` against CrowdSky's on the same
  stars (green FWHM and bright-star SNR).
* **Simulated frames** (``crowdsky.simulate``, full S50 size, 90 and 300 frames):
  CrowdSky alone.

Two timings per engine, both measured in every run:

* *fresh*: a new process stacks once: wall time of the whole subprocess
  (interpreter start and imports included; both runners end without the
  interpreter's teardown, as ``crowdsky stack`` does) and its CPU time;
* *warm*: the same process then stacks the same frames ``--warm`` more times, as a
  long-lived worker does job after job: the median wall time of those calls.

Per case also seconds per frame (warm), peak RSS (``VmHWM`` of the subprocess),
scratch bytes (CrowdSky reports its scratch file; seestarpy has none) and the bytes
the fresh call wrote. Quality figures are computed by this script in the same way
for every output, on the summed RGB channels, 100 px inside the edges: stars
detected by sep at 5σ (minarea 5), median FWHM (2 × half-flux radius of unflagged
stars) and background noise (clipped RMS after a 64 px background model with sources
masked); FWHM and noise are also compared with seestarpy's on the same stars. One
warm-up run per case, then ``--repeats`` timed runs; medians reported.

Usage (from the project root)::

    .venv/bin/python bench/bench_stacking.py [--repeats 3] [--warm 3] [--work-dir DIR]
        [--real 15,32] [--sim 90,300] [--no-seestarpy] [--no-siril] [--variants SPEC;SPEC]
        [--write-doc] [--src OTHER_CHECKOUT/src]

``--write-doc`` replaces the "## Stacking engine" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
REAL_DIR = ROOT.parent / "shared" / "data" / "seestar-s50-m94"
SEESTARPY_SPEC = "seestarpy==0.1.3"
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## Stacking engine"
EDGE_PX = 100
DEFAULT_VARIANTS = "demosaic=bilinear,interpolation=cubic-linear,smoothing_px=0;smoothing_px=0"
NOTES = """
How to read it:

- *Fresh process* is what `crowdsky stack` (or a `--once` worker) costs: interpreter
  start, imports, numba's cached-kernel load, stacking, writing. *Warm call* is what a
  long-lived worker pays per job once those are paid: `stack_files` /
  `FrameCollection(...).process(...)` + `save` called again in the same process.
  *CPU* is user + system time of the fresh process, the figure least disturbed by
  other load on this shared machine. *Peak RSS* is the process's peak over the fresh
  call and its warm calls (which reuse the fresh call's buffers).
- seestarpy runs with `pip install seestarpy==0.1.3`; its output is the interleaved
  (H, W, 3) primary array of stacking.md §2.3, read as such for the quality figures.
- FWHM ratio and noise ratio compare CrowdSky with seestarpy on the *same* stars (star
  lists matched with CrowdSky's registration code): the per-engine median FWHM over
  ~80–120 stars moves by a few hundredths of a pixel with the grid, the paired ratio
  does not.
- Sharpness and noise pull against each other: any interpolation smooths a frame by an
  amount that depends on its sub-pixel offset. CrowdSky resamples each Bayer colour once
  from its own sites (no demosaic before the warp) with the sharp cubic kernel, then
  applies one uniform Gaussian low-pass (σ = 0.5 px) to the stack. The variant rows show
  the parts: *smoothing_px=0* is the sharpest, noisiest stack; *demosaic=bilinear,...* is
  the previous resampling (bilinear demosaic, then the mean of cubic and bilinear
  warps; rejection and hot-pixel filter as in the current engine).
- Simulated frames are `simulate_sequence(folder, SequenceSpec(n_frames=300, seed=42))` at
  full S50 size (the first 90 for N = 90). Beyond the in-memory budget
  (`StackParams.memory_limit_bytes`, default 768 MiB) frames stream through a float16
  scratch file, so peak RSS stays flat from 90 to 300 frames; the scratch file is
  removed at the end. *Written* includes the output FITS (~29 MB).
"""


# -- environments -----------------------------------------------------------------------


def seestarpy_python(work: Path) -> Path:
    """Create (once) a venv with seestarpy 0.1.3 and return its interpreter."""
    venv = work / "venv-seestarpy"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} and installing {SEESTARPY_SPEC} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", SEESTARPY_SPEC], check=True)
    probe = subprocess.run([str(python), "-c", "import cv2"], capture_output=True)
    if probe.returncode != 0:  # GUI OpenCV without libGL: use the headless wheel
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "opencv-python-headless"], check=True
        )
    return python


SOURCE = ROOT / "src"
"""The CrowdSky source tree the runs use (``--src``: another checkout, to compare)."""


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="2", NUMBA_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2")
    env["PYTHONPATH"] = str(SOURCE)
    # An installed package has its bytecode compiled (pip does it); a shell that sets
    # PYTHONDONTWRITEBYTECODE would make every run compile CrowdSky's ~40 modules
    # again (~50 ms a process), a cost no user has.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    return (
        f"{cpu}, {os.cpu_count()} CPUs, {mem_gb:.0f} GB RAM, Linux {platform.release()}, "
        f"Python {platform.python_version()}, load average at start {os.getloadavg()[0]:.1f}"
    )


# -- one run ------------------------------------------------------------------------------


def run_once(
    python: Path, runner: Path, paths: list[Path], out: Path, work: Path, extra: list[str]
) -> dict:
    listing = work / "inputs.txt"
    listing.write_text("\n".join(str(p) for p in paths))
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(python), str(runner), str(listing), str(out), *extra],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=work,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{runner.name} failed:\n{proc.stderr[-3000:]}")
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    # the subprocess's wall time covers the warm calls too: take them out
    record["wall_s"] = wall - sum(w["wall_s"] for w in record.get("warm", []))
    return record


# -- quality ---------------------------------------------------------------------------------


def load_luminance(path: Path) -> np.ndarray:
    from astropy.io import fits

    with fits.open(path) as hdul:
        names = {h.name for h in hdul}
        if {"RED", "GREEN", "BLUE"} <= names:
            rgb = np.stack([hdul[n].data for n in ("RED", "GREEN", "BLUE")], axis=-1)
        else:
            data = np.asarray(hdul[0].data, dtype=np.float32)
            rgb = np.moveaxis(data, 0, -1) if data.shape[0] == 3 else data
    lum = np.asarray(rgb, dtype=np.float32).sum(axis=2)
    return np.ascontiguousarray(lum[EDGE_PX:-EDGE_PX, EDGE_PX:-EDGE_PX])


def quality(lum: np.ndarray) -> dict[str, float]:
    import cv2
    import sep

    sep.set_extract_pixstack(2_000_000)
    lum = np.where(np.isfinite(lum), lum, np.nanmedian(lum)).astype(np.float32)
    bkg = sep.Background(lum, bw=64, bh=64)
    res = lum - bkg.back()
    objs, _segmap = sep.extract(res, 5.0, err=bkg.globalrms, minarea=5, segmentation_map=True)
    good = objs[(objs["flag"] == 0) & (objs["peak"] < 0.8 * objs["peak"].max())]
    r50, rflag = sep.flux_radius(
        res, good["x"], good["y"], np.clip(6.0 * good["a"], 3, 40), 0.5, subpix=5
    )
    fwhm = 2.0 * r50[(rflag == 0) & (r50 > 0)]
    _, seg3 = sep.extract(res, 3.0, err=bkg.globalrms, segmentation_map=True)
    sources = cv2.dilate((seg3 > 0).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    values = res[~sources]
    for _ in range(5):
        med, std = np.median(values), values.std()
        values = values[np.abs(values - med) < 4.0 * std]
    ok = (rflag == 0) & (r50 > 0)
    return {
        "stars": float(len(objs)),
        "fwhm_px": float(np.median(fwhm)) if fwhm.size else float("nan"),
        "noise_adu": float(values.std()),
        "star_xy": np.column_stack([good["x"][ok], good["y"][ok]]),
        "star_fwhm": fwhm,
    }


def paired_fwhm_ratio(a: dict, b: dict) -> tuple[float, int]:
    """Median FWHM ratio a / b over the same stars (the outputs' grids differ by their
    reference frames, so the star lists are matched with our registration code)."""
    sys.path.insert(0, str(ROOT / "src"))
    from crowdsky.stacking import register

    reg = register.match_stars(a["star_xy"], b["star_xy"], radius_px=2.0)
    if reg is None or reg.n_matched < 5:
        return float("nan"), 0
    ratio = a["star_fwhm"][reg.src_index] / b["star_fwhm"][reg.ref_index]
    return float(np.median(ratio)), int(reg.n_matched)


# -- cases -------------------------------------------------------------------------------------


def simulated_frames(work: Path, n: int) -> list[Path]:
    """A full-size simulated sequence, generated once and cached in the work directory."""
    sys.path.insert(0, str(ROOT / "src"))
    from crowdsky.simulate import SequenceSpec, simulate_sequence

    folder = work / "sim"
    existing = sorted(folder.glob("*.fit"))
    if len(existing) < n:
        print(f"simulating {n} full-size frames into {folder} ...", flush=True)
        seq = simulate_sequence(folder, SequenceSpec(n_frames=n, seed=42))
        existing = list(seq.paths)
    return sorted(existing)[:n]


def bench_case(label, engine, python, runner, paths, work, repeats, warm, extra=()) -> dict:
    """One warm-up run, then ``repeats`` runs of a fresh process that stacks once and
    then ``warm`` more times; medians of the fresh and of all warm figures."""
    tag = "-".join(x.strip("-{}\"':, ") for x in extra) or "default"
    out = work / f"out-{engine}-{len(paths)}-{tag}.fits"
    extra = [*extra, "--warm", str(warm)]
    print(f"{engine:10s} {label:12s} {tag} warm-up ...", flush=True)
    run_once(python, runner, paths, out, work, extra)
    runs = []
    for k in range(repeats):
        record = run_once(python, runner, paths, out, work, extra)
        runs.append(record)
        report_run(engine, label, k, record)
    return summarize(runs, engine, label, paths, out, warm)


def report_run(engine: str, label: str, k: int, record: dict) -> None:
    warm_walls = ", ".join(f"{w['wall_s']:.2f}" for w in record["warm"])
    print(
        f"{engine:10s} {label:12s} run {k + 1}: fresh wall {record['wall_s']:.2f} s "
        f"(call {record['stack_s']:.2f} s), warm calls {warm_walls} s, "
        f"peak RSS {record['peak_rss_bytes'] / 1e6:.0f} MB",
        flush=True,
    )


def summarize(runs: list[dict], engine: str, label: str, paths: list[Path], out: Path, warm: int):
    """Medians of the fresh and of all warm figures of ``runs``, and the output's quality."""
    med = {
        key: statistics.median(r[key] for r in runs)
        for key in (
            "wall_s",
            "cpu_s",
            "stack_s",
            "import_s",
            "peak_rss_bytes",
            "write_bytes",
            "scratch_bytes",
        )
    }
    warm_calls = [w for r in runs for w in r["warm"]]
    med["warm_s"] = statistics.median(w["wall_s"] for w in warm_calls) if warm_calls else None
    med["warm_max_s"] = max(w["wall_s"] for w in warm_calls) if warm_calls else None
    med["warm_cpu_s"] = statistics.median(w["cpu_s"] for w in warm_calls) if warm_calls else None
    med.update(quality(load_luminance(out)))
    med.update(
        engine=engine,
        label=label,
        n=len(paths),
        n_aligned=runs[-1].get("n_aligned"),
        storage=runs[-1].get("storage", "ram-float64"),
        wall_max_s=max(r["wall_s"] for r in runs),
        stages=runs[-1].get("stages_s"),
        output=out,
        first_over_warm=statistics.median(
            r["stack_s"] / statistics.median(w["wall_s"] for w in r["warm"])
            for r in runs
            if r["warm"]
        )
        if warm
        else None,
    )
    return med


def bench_pair(
    label: str,
    paths: list[Path],
    work: Path,
    repeats: int,
    warm: int,
    base_src: Path,
    seestar_py: Path | None,
    with_siril: bool,
) -> list[dict]:
    """Same-sitting comparison with another checkout (``--base-src``): each repeat runs,
    one after the other, this tree's and the base tree's fresh process (then ``warm``
    calls) and whole ``crowdsky stack`` process, Siril's whole process and seestarpy's
    process; the first round warms everything up and is not counted. A change of load
    during the run then shows in every engine alike."""
    global SOURCE
    this_src = SOURCE
    trees = [("crowdsky", this_src), ("crowdsky (base)", base_src.resolve())]
    ours = HERE / "stacking_run_crowdsky.py"
    exe = Path(sys.executable).with_name("crowdsky")
    extra = ["--warm", str(warm)]
    n = len(paths)
    runs: dict[str, list[dict]] = {name: [] for name, _ in trees}
    cli: dict[str, list[float]] = {name: [] for name, _ in trees}
    siril_runs: list[dict] = []
    seestar_runs: list[dict] = []
    outs = {name: work / f"out-{name.replace(' ', '').strip('()')}-{n}.fits" for name, _ in trees}
    try:
        for k in range(repeats + 1):
            for name, src in trees:
                SOURCE = src
                record = run_once(Path(sys.executable), ours, paths, outs[name], work, extra)
                t0 = time.perf_counter()
                subprocess.run(
                    [str(exe), "stack", *map(str, paths), "-o", str(work / f"out-cli-{n}.fits")],
                    check=True,
                    capture_output=True,
                    env=child_env(),
                    cwd=work,
                )
                cli_wall = time.perf_counter() - t0
                print(f"{name:16s} {label}: `crowdsky stack` process {cli_wall:.2f} s", flush=True)
                if k:
                    runs[name].append(record)
                    cli[name].append(cli_wall)
                    report_run(name, label, k - 1, record)
            SOURCE = this_src
            if with_siril:
                record = run_once(
                    Path(sys.executable),
                    HERE / "stacking_run_siril.py",
                    paths,
                    work / f"out-siril-{n}.fits",
                    work,
                    [],
                )
                print(f"siril            {label}: wall {record['wall_s']:.2f} s", flush=True)
                if k:
                    siril_runs.append(record)
            if seestar_py is not None:
                record = run_once(
                    seestar_py,
                    HERE / "stacking_run_seestarpy.py",
                    paths,
                    work / f"out-seestarpy-{n}-default.fits",
                    work,
                    extra,
                )
                if k:
                    seestar_runs.append(record)
                    report_run("seestarpy", label, k - 1, record)
    finally:
        SOURCE = this_src
    rows = []
    for name, _ in trees:
        row = summarize(runs[name], name, label, paths, outs[name], warm)
        row["cli_walls"] = cli[name]
        rows.append(row)
    if siril_runs:
        rows.append(siril_row(siril_runs, label, paths, work / f"out-siril-{n}.fits"))
    if seestar_runs:
        out = work / f"out-seestarpy-{n}-default.fits"
        rows.append(summarize(seestar_runs, "seestarpy", label, paths, out, warm))
    return rows


def bench_cli(paths: list[Path], work: Path, repeats: int) -> list[float]:
    """Wall seconds of whole ``crowdsky stack FILES -o OUT`` processes (one warm-up)."""
    exe = Path(sys.executable).with_name("crowdsky")
    out = work / f"out-cli-{len(paths)}.fits"
    walls = []
    for k in range(repeats + 1):
        t0 = time.perf_counter()
        subprocess.run(
            [str(exe), "stack", *map(str, paths), "-o", str(out)],
            check=True,
            capture_output=True,
            env=child_env(),
            cwd=work,
        )
        if k:
            walls.append(time.perf_counter() - t0)
    return walls


def bench_siril(label: str, paths: list[Path], work: Path, repeats: int) -> dict:
    """``repeats`` whole Siril processes on the frames (no warm-up needed: Siril keeps
    nothing between runs; the first run also warms the page cache for it)."""
    out = work / f"out-siril-{len(paths)}.fits"
    runs = []
    for k in range(repeats + 1):
        record = run_once(
            Path(sys.executable), HERE / "stacking_run_siril.py", paths, out, work, []
        )
        print(f"siril      {label:12s} run {k}: wall {record['wall_s']:.2f} s", flush=True)
        if k:
            runs.append(record)
    return siril_row(runs, label, paths, out)


def siril_row(runs: list[dict], label: str, paths: list[Path], out: Path) -> dict:
    med = {
        key: statistics.median(r[key] for r in runs)
        for key in ("wall_s", "cpu_s", "peak_rss_bytes")
    }
    med.update(quality(load_luminance(out)))
    med.update(
        engine="siril",
        label=label,
        n=len(paths),
        n_aligned=None,
        storage="disk",
        wall_max_s=max(r["wall_s"] for r in runs),
        stack_s=float("nan"),
        import_s=float("nan"),
        write_bytes=float("nan"),
        scratch_bytes=float("nan"),
        warm_s=None,
        warm_max_s=None,
        output=out,
    )
    return med


def sharpness(paths: list[Path]) -> list[dict]:
    """``measure_sharpness.measure`` (same stars, green, border cut) of the outputs."""
    sys.path.insert(0, str(HERE))
    import measure_sharpness

    return measure_sharpness.measure(paths)


def single_frame_quality(path: Path) -> dict:
    import cv2

    from crowdsky.stacking import io

    frame = io.read_frame(path)
    rgb = cv2.cvtColor(frame.data, cv2.COLOR_BayerGRBG2RGB).astype(np.float32)
    lum = rgb.sum(axis=2)[EDGE_PX:-EDGE_PX, EDGE_PX:-EDGE_PX]
    return quality(np.ascontiguousarray(lum))


# -- report -------------------------------------------------------------------------------------


def table(rows: list[dict]) -> str:
    head = (
        "| Input | Engine | Frames (stacked) | Fresh process wall s (median / max) | CPU s "
        "| Warm call s (median / max) | Warm s/frame | Peak RSS MB | Scratch MB "
        "| Written MB | Stars | Median FWHM px | Bkg noise ADU |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        if r["engine"] == "single":
            lines.append(
                f"| {r['label']} | one raw frame (debayered) | 1 | – | – | – | – | – | – | – "
                f"| {r['stars']:.0f} | {r['fwhm_px']:.2f} | {r['noise_adu']:.1f} |"
            )
            continue
        aligned = "?" if r["n_aligned"] is None else str(r["n_aligned"])
        warm = (
            f"{r['warm_s']:.2f} / {r['warm_max_s']:.2f} | {r['warm_s'] / r['n']:.3f}"
            if r["warm_s"] is not None
            else "– | –"
        )
        lines.append(
            f"| {r['label']} | {r['engine']} | {r['n']} ({aligned}) "
            f"| {r['wall_s']:.2f} / {r['wall_max_s']:.2f} | {r['cpu_s']:.2f} | {warm} "
            f"| {r['peak_rss_bytes'] / 1e6:.0f} "
            f"| {_mb(r['scratch_bytes'])} | {_mb(r['write_bytes'])} "
            f"| {r['stars']:.0f} | {r['fwhm_px']:.2f} | {r['noise_adu']:.1f} |"
        )
    return head + "\n".join(lines) + "\n"


def _mb(value: float) -> str:
    return "–" if value != value else f"{value / 1e6:.0f}"


def write_doc(text: str) -> None:
    DOC.parent.mkdir(parents=True, exist_ok=True)
    current = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if SECTION in current:
        start = current.index(SECTION)
        nxt = current.find("\n## ", start + len(SECTION))
        current = current[:start] + text.rstrip() + "\n" + (current[nxt:] if nxt >= 0 else "")
    else:
        current = current.rstrip() + "\n\n" + text.rstrip() + "\n"
    DOC.write_text(current)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warm", type=int, default=3, help="warm calls per process")
    parser.add_argument(
        "--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "crowdsky-bench"
    )
    parser.add_argument("--real", default="15,32", help="real-frame counts ('' to skip)")
    parser.add_argument("--sim", default="90,300", help="simulated-frame counts ('' to skip)")
    parser.add_argument("--no-seestarpy", action="store_true")
    parser.add_argument("--no-siril", action="store_true")
    parser.add_argument(
        "--variants",
        default=DEFAULT_VARIANTS,
        help="extra CrowdSky runs on the real frames: StackParams overrides as "
        "name=value,... separated by ';' ('' for none)",
    )
    parser.add_argument("--write-doc", action="store_true")
    parser.add_argument(
        "--base-src",
        type=Path,
        default=None,
        help="another checkout's src to compare with in the same sitting (real frames: "
        "both trees, Siril and seestarpy run in turn each repeat)",
    )
    parser.add_argument(
        "--src",
        type=Path,
        default=ROOT / "src",
        help="CrowdSky source tree to run (e.g. a worktree of an earlier commit)",
    )
    args = parser.parse_args()
    global SOURCE
    SOURCE = args.src.resolve()
    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    env_line = machine()
    print(env_line, flush=True)
    ours_py = Path(sys.executable)
    ours = HERE / "stacking_run_crowdsky.py"
    theirs = HERE / "stacking_run_seestarpy.py"
    variants = [parse_variant(v) for v in args.variants.split(";") if v.strip()]
    rows: list[dict] = []
    real_counts = [int(x) for x in args.real.split(",") if x]
    if real_counts:
        frames = sorted(REAL_DIR.glob("*.fit"))
        if len(frames) < max(real_counts):
            sys.exit(f"need {max(real_counts)} real frames in {REAL_DIR}")
        seestar_py = None if args.no_seestarpy else seestarpy_python(work)
        for n in real_counts:
            label = f"real M 94 ×{n}"
            rows.append(dict(single_frame_quality(frames[n // 2]), engine="single", label=label))
            common = (frames[:n], work, args.repeats, args.warm)
            if args.base_src is not None:
                rows.extend(
                    bench_pair(
                        label,
                        frames[:n],
                        work,
                        args.repeats,
                        args.warm,
                        args.base_src,
                        seestar_py,
                        not args.no_siril,
                    )
                )
                continue
            ours_row = bench_case(label, "crowdsky", ours_py, ours, *common)
            ours_row["cli_walls"] = bench_cli(frames[:n], work, args.repeats)
            rows.append(ours_row)
            if not args.no_siril:
                rows.append(bench_siril(label, frames[:n], work, args.repeats))
            for name, overrides in variants:
                extra = ["--params", json.dumps(overrides)]
                row = bench_case(label, "crowdsky", ours_py, ours, *common, extra)
                row["engine"] = f"crowdsky ({name})"
                rows.append(row)
            if seestar_py is not None:
                rows.append(bench_case(label, "seestarpy", seestar_py, theirs, *common))
    for n in [int(x) for x in args.sim.split(",") if x]:
        paths = simulated_frames(work, n)
        label = f"simulated ×{n}"
        rows.append(
            bench_case(label, "crowdsky", ours_py, ours, paths, work, args.repeats, args.warm)
        )
    env_end = f"load average at end {os.getloadavg()[0]:.1f}"
    md = table(rows)
    comparisons = []
    for n in real_counts:

        def real(r: dict, n: int = n) -> bool:
            return "real" in r["label"] and r["n"] == n

        b = next((r for r in rows if r["engine"] == "seestarpy" and real(r)), None)
        for a in rows:
            if b is None or not (a["engine"].startswith("crowdsky") and real(a)):
                continue
            ratio, matched = paired_fwhm_ratio(a, b)
            warm = (
                f"{b['warm_s'] / a['warm_s']:.1f}× faster warm, "
                if a.get("warm_s") and b.get("warm_s")
                else ""
            )
            comparisons.append(
                f"- {n} real frames, {a['engine']}: "
                + warm
                + f"{b['wall_s'] / a['wall_s']:.1f}× faster as a fresh process, "
                f"{b['cpu_s'] / a['cpu_s']:.1f}× less CPU time (fresh), "
                f"{b['peak_rss_bytes'] / a['peak_rss_bytes']:.1f}× less peak memory; "
                f"FWHM ratio to seestarpy on the same {matched} stars {ratio:.3f}, "
                f"background noise ratio {a['noise_adu'] / b['noise_adu']:.3f}."
            )
    for a in rows:
        if not (a["engine"].startswith("crowdsky") and "real" in a["label"] and "cli_walls" in a):
            continue
        n = a["n"]
        cli = statistics.median(a["cli_walls"])
        line = (
            f"- {n} real frames, {a['engine']}: first call in a process {a['stack_s']:.2f} s, "
            f"{a['first_over_warm']:.2f}× the warm call (median of the runs' ratios); "
            f"whole `crowdsky stack` process {cli:.2f} s (median of "
            f"{', '.join(f'{w:.2f}' for w in a['cli_walls'])})"
        )
        siril = next((r for r in rows if r["engine"] == "siril" and r["n"] == n), None)
        if siril is not None:
            line += f"; Siril's whole process {siril['wall_s']:.2f} s: {siril['wall_s'] / cli:.1f}×"
            ours_rows = [
                r
                for r in rows
                if r["engine"].startswith("crowdsky") and r["n"] == n and "real" in r["label"]
            ]
            m = sharpness([siril["output"], *(r["output"] for r in ours_rows)])
            line += (
                f". Sharpness on the same {m[0]['common_stars']} stars (green, 5 % border, "
                f"`bench/measure_sharpness.py`): Siril FWHM {m[0]['median_fwhm_px']:.3f} px, "
                f"bright-star SNR {m[0]['bright_star_snr']:.0f}"
            )
            for r, got in zip(ours_rows, m[1:], strict=True):
                line += (
                    f"; {r['engine']}: FWHM {got['median_fwhm_px']:.3f} px (ratio "
                    f"{got['median_fwhm_px'] / m[0]['median_fwhm_px']:.3f}), SNR "
                    f"{got['bright_star_snr']:.0f} "
                    f"({got['bright_star_snr'] / m[0]['bright_star_snr']:.2f}×), "
                    f"warm {r['warm_s']:.2f} s"
                )
        comparisons.append(line + ".")
    stage_lines = [
        f"- {r['label']}, {r['engine']}: "
        + ", ".join(f"{k} {v:.2f}" for k, v in (r.get("stages") or {}).items())
        + f" (storage {r['storage']})"
        for r in rows
        if r["engine"].startswith("crowdsky")
    ]
    print()
    print(md)
    print("\n".join(comparisons))
    print("\n".join(stage_lines))
    if args.write_doc:
        variant_text = ", ".join(f"*{name}*" for name, _ in variants)
        write_doc(
            f"{SECTION}\n\n"
            "Reproduce (from the project root; creates a seestarpy 0.1.3 venv and a simulated "
            "sequence in the work directory, default `$TMPDIR/crowdsky-bench`):\n\n"
            "```\n.venv/bin/python bench/bench_stacking.py --repeats "
            f"{args.repeats} --warm {args.warm} --write-doc\n```\n\n"
            f"Machine: {env_line}; {env_end}. The machine is shared and noisy: compare rows "
            "of one run only. Fresh: median of the timed runs after one warm-up run; warm: "
            "median of every warm call of those runs. Quality figures from the last run's "
            "output, measured identically for every engine (summed RGB, 100 px inside the "
            f"edges). Variants: {variant_text or 'none'}.\n\n"
            + md
            + "\n"
            + "\n".join(comparisons)
            + "\n\nCrowdSky stage times of the last fresh call (seconds):\n\n"
            + "\n".join(stage_lines)
            + "\n"
            + NOTES
        )
        print(f"\nwrote {DOC.relative_to(ROOT)}")


def parse_variant(spec: str) -> tuple[str, dict]:
    """``name=value,...`` → (the spec as a label, StackParams overrides)."""
    overrides: dict = {}
    for item in spec.split(","):
        key, _, raw = item.strip().partition("=")
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    return spec.strip(), overrides


if __name__ == "__main__":
    main()
