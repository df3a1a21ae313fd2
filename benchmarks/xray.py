"""Benchmark: the X-ray eraser on 41 × 1024² images — time, hits found, other pixels changed, beads kept.

    python benchmarks/xray.py [--sim /tmp/tf_small] [--before REF] [--repeat 3] [--json FILE] [--no-write]

Two image sets of 41 × 1024²:

- ``small``: the simulator's `small` preset (seed 1; simulated into ``--sim`` when absent), the gain-corrected
  frame sums of all 41 tilts (hits and hot pixels are fixed on the detector, so no alignment is needed).
  A hit (or hot pixel) is found when a pixel of the 6 × 6 window at its position changed (as in
  tests/methods/preprocess/test_xray.py); "other pixels changed" counts outside those windows; bead pixels are those
  within 0.8 bead radii of each gold bead's true projection;
- ``synthetic``: Poisson images (mean 20, ±30 % slow texture) with 40 hits of 1–4 pixels (60–120 counts),
  10 small (r = 4 px, 0.3×) and 4 large (r = 16 px, 0.6×) dark beads per image; pixel-exact truth.

Times (wall, images in memory) are the median of ``--repeat`` runs of ``erase_xrays``; the protocol task
(``xray_task``: the stack and its odd/even halves read from MRC, erased, written) once. ``--before REF``
also runs the eraser of tomoforge/methods/preprocess/xray.py at git REF (once: it is slow) on the same data.
Prints one JSON object (also written to ``--json``) and rewrites the xray section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # this checkout's tomoforge, not an installed one; results_md
from results_md import machine_info, replace_section

import tomoforge
from tomoforge.io.movies import read_gain, read_movie
from tomoforge.io.mrc import write_mrc
from tomoforge.methods.align.projection_model import ProjectionModel
from tomoforge.methods.preprocess.xray import erase_xrays

START, END = "<!-- xray:start -->", "<!-- xray:end -->"


def small_data(sim: Path) -> dict:
    """Sums (and odd/even sums) of the small preset's 41 movies, gain applied; hit windows and bead disks."""
    if not (sim / "simulation.json").is_file():
        from tomoforge.simulate import simulate

        simulate(sim, preset="small", seed=1, progress=False)
    from tomoforge.simulate import load_simulation

    result = load_simulation(sim)
    ts = result.tilt_series[0]
    truth, gain = ts.truth, read_gain(result.gain)
    sums, odd, even = [], [], []
    for movie in ts.movies:
        frames = read_movie(movie) * gain
        sums.append(frames.sum(0))
        odd.append(frames[0::2].sum(0))
        even.append(frames[1::2].sum(0))
    stack = np.stack(sums).astype(np.float32)
    n, ny, nx = stack.shape
    windows = [(h["tilt_index"], h["y_px"], h["x_px"]) for h in truth["xrays"]]
    windows += [(i, y, x) for i in range(n) for y, x in truth["hot_pixels_yx"]]
    near = np.zeros(stack.shape, bool)
    for i, y, x in windows:
        near[i, max(y - 2, 0) : y + 4, max(x - 2, 0) : x + 4] = True
    tilts = truth["tilts"]  # in the movies' order
    model = ProjectionModel(
        [t["y_tilt_deg"] for t in tilts],
        [t["z_rot_deg"] for t in tilts],
        [[t["x_shift_A"], t["y_shift_A"]] for t in tilts],
        [t["x_tilt_deg"] for t in tilts],
    )
    points = np.array([f["position_A"] for f in truth["fiducials"]])
    uv = model.project_px(points, truth["pixel_size_A"])  # (n, beads, 2) x, y from the centre
    radius = 0.8 * 0.5 * truth["fiducials"][0]["diameter_A"] / truth["pixel_size_A"]
    yy, xx = np.mgrid[0:ny, 0:nx]
    beads = np.zeros(stack.shape, bool)
    for i in range(n):
        for u, v in uv[i]:
            beads[i] |= (xx - (nx / 2 + u)) ** 2 + (yy - (ny / 2 + v)) ** 2 <= radius**2
    return {
        "images": stack,
        "odd": np.stack(odd).astype(np.float32),
        "even": np.stack(even).astype(np.float32),
        "windows": windows,
        "near": near,
        "beads": beads & ~near,
        "pixel_size_A": truth["pixel_size_A"],
    }


def synthetic_data(seed: int = 7, n: int = 41, size: int = 1024) -> dict:
    """Poisson images with injected hits (pixel-exact truth) and dark beads of two sizes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    expected = 20.0 * (1 + 0.3 * np.sin(x / 17.0) * np.cos(y / 23.0))
    images = rng.poisson(np.broadcast_to(expected, (n, size, size))).astype(np.float32)
    truth = np.zeros(images.shape, bool)
    beads = np.zeros(images.shape, bool)
    for k in range(n):
        for count, r, factor in ((10, 4, 0.3), (4, 16, 0.6)):
            for cy, cx in rng.integers(r, size - r, (count, 2)):
                disk = (y - cy) ** 2 + (x - cx) ** 2 < r * r
                images[k][disk] *= factor
                beads[k] |= disk
        for j, (cy, cx) in enumerate(rng.integers(4, size - 5, (40, 2))):
            counts = rng.uniform(60, 120)
            for py, px in [(cy, cx), (cy, cx + 1), (cy + 1, cx), (cy + 1, cx + 1)][: 1 + j % 4]:
                images[k, py, px] += counts
                truth[k, py, px] = True
    return {"images": images, "truth": truth, "beads": beads & ~truth}


def load_eraser(ref: str):
    """``erase_xrays`` of tomoforge/methods/preprocess/xray.py at git ``ref``."""
    source = subprocess.run(
        ["git", "show", f"{ref}:tomoforge/methods/preprocess/xray.py"],
        cwd=HERE,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    folder = Path(tempfile.mkdtemp())
    (folder / "xray_before.py").write_text(source)
    spec = importlib.util.spec_from_file_location("xray_before", folder / "xray_before.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["xray_before"] = module
    spec.loader.exec_module(module)
    return module.erase_xrays


def timed(fn, images: np.ndarray, repeat: int):
    """(median wall s, each run's wall s, median CPU s of the process (all threads), the last result)."""
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        result = fn(torch.from_numpy(images))
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return float(np.median(walls)), [round(t, 2) for t in walls], float(np.median(cpus)), result


def small_scores(data: dict, result) -> dict:
    changed = result.images.numpy() != data["images"]
    found = sum(bool(changed[i, max(y - 2, 0) : y + 4, max(x - 2, 0) : x + 4].any()) for i, y, x in data["windows"])
    other = ~data["near"]
    return {
        "hits_found": found,
        "hits_total": len(data["windows"]),
        "other_changed_fraction": float((changed & other).sum() / other.sum()),
        "bead_pixels_changed": int((changed & data["beads"]).sum()),
        "bead_pixels": int(data["beads"].sum()),
        "pixels_replaced": int(sum(result.pixels_replaced)),
    }


def synthetic_scores(data: dict, result) -> dict:
    mask, truth = result.mask.numpy(), data["truth"]
    changed = result.images.numpy() != data["images"]
    return {
        "hit_pixels_found": int((mask & truth).sum()),
        "hit_pixels": int(truth.sum()),
        "other_changed_fraction": float((changed & ~truth).sum() / (~truth).sum()),
        "bead_pixels_changed": int((changed & data["beads"]).sum()),
        "bead_pixels": int(data["beads"].sum()),
    }


def task_seconds(data: dict, eraser=None) -> tuple[float, float]:
    """Wall and CPU s of the protocol's task (3 stacks read, erased, written), optionally with another eraser."""
    import tomoforge.methods.preprocess.xray as method
    from tomoforge.protocols.preprocess.xray import XrayJob, XrayParams, xray_task

    with tempfile.TemporaryDirectory() as tmp:
        sources = {}
        for kind, key in (("file", "images"), ("odd_file", "odd"), ("even_file", "even")):
            path = Path(tmp) / f"in_{kind}.mrc"
            write_mrc(path, data[key], data["pixel_size_A"])
            sources[kind] = [(str(path), i) for i in range(data[key].shape[0])]
        job = XrayJob(
            sources=sources,
            out_base=str(Path(tmp) / "out"),
            pixel_size_A=data["pixel_size_A"],
            settings=XrayParams().settings(),
        )
        saved = method.erase_xrays
        if eraser is not None:  # an eraser of before the settings dataclass takes the options as keywords
            old = eraser
            eraser = lambda images, settings: old(images, **dataclasses.asdict(settings))  # noqa: E731
        method.erase_xrays = eraser or saved  # the task imports it from the method's module when it runs
        try:
            start, cpu = time.perf_counter(), time.process_time()
            xray_task(job)
            return time.perf_counter() - start, time.process_time() - cpu
        finally:
            method.erase_xrays = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim", type=Path, default=Path(tempfile.gettempdir()) / "tf_small")
    ap.add_argument("--before", help="git ref whose eraser to run too (e.g. 28ddc84)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--from-json", type=Path, help="only rewrite the RESULTS.md section from a saved --json")
    args = ap.parse_args()
    if args.from_json:
        write_section(json.loads(args.from_json.read_text()))
        return
    results: dict = {
        "machine": machine_info(),
        "tomoforge": str(Path(tomoforge.__file__).parent),
        "uptime_before": subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip(),
    }
    small, synthetic = small_data(args.sim), synthetic_data()
    erasers = {"after": erase_xrays}
    if args.before:
        erasers["before"] = load_eraser(args.before)
        results["before_ref"] = args.before
    for name, fn in erasers.items():
        repeat = args.repeat if name == "after" else 1
        entry: dict = {}
        entry["small_s"], entry["small_runs_s"], entry["small_cpu_s"], result = timed(fn, small["images"], repeat)
        entry["small"] = small_scores(small, result)
        entry["synthetic_s"], entry["synthetic_runs_s"], entry["synthetic_cpu_s"], result = timed(
            fn, synthetic["images"], repeat
        )
        entry["synthetic"] = synthetic_scores(synthetic, result)
        entry["task_3_stacks_s"], entry["task_3_stacks_cpu_s"] = task_seconds(small, None if name == "after" else fn)
        results[name] = entry
    results["load_after"] = round(os.getloadavg()[0], 2)
    text = json.dumps(results, indent=1, ensure_ascii=False)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    if not args.no_write:
        write_section(results)


def write_section(r: dict) -> None:
    m = r["machine"]
    lines = [
        "## X-ray eraser (`python benchmarks/xray.py"
        + (f" --before {r['before_ref']}" if "before_ref" in r else "")
        + "`)",
        "",
        (
            f"{m['date']}, commit {m['git']}, {m['nproc']} cores ({m['cpu']}), torch {m['torch']} "
            f"({m['torch_threads']} threads), load average {m['load']} before, {r['load_after']} after "
            "(the machine is shared: the wall time depends on the others' load, the CPU time of the process, all threads, "
            "much less). 41 × 1024² images in memory; median of the runs (each run's wall s listed); "
            "the protocol task reads the stack and its odd/even halves from MRC, erases and writes all three."
        ),
        "",
        (
            "Data: `small` = the simulator's small preset (seed 1), gain-corrected frame sums of the 41 tilts (3 Å/px; "
            "gold beads of 100 Å, 13 % of the background); a hit or hot pixel is found when a pixel of its 6 × 6 "
            "window changed, bead pixels are those within 0.8 radii of the true projections. `synthetic` = Poisson "
            "(mean 20, ±30 % texture) with 40 hits of 1–4 pixels (60–120 counts) per image and dark beads "
            "(10 of r = 4 px at 0.3×, 4 of r = 16 px at 0.6×); pixel-exact truth."
        ),
        "",
        (
            "| eraser | small (41 × 1024²): wall s (runs) | CPU s | synthetic: wall s | CPU s "
            "| task (3 stacks, I/O incl.): wall s | CPU s | small: hits found "
            "| small: other pixels changed | small: bead pixels changed | synthetic: hit pixels found "
            "| synthetic: other pixels changed | synthetic: bead pixels changed |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("before", "after"):
        if name not in r:
            continue
        e, s, y = r[name], r[name]["small"], r[name]["synthetic"]
        label = f"before ({r['before_ref']})" if name == "before" else f"after ({m['git']})"
        lines.append(
            f"| {label} | {e['small_s']:.2f} ({', '.join(map(str, e['small_runs_s']))}) "
            f"| {e['small_cpu_s']:.2f} | {e['synthetic_s']:.2f} | {e['synthetic_cpu_s']:.2f} "
            f"| {e['task_3_stacks_s']:.2f} | {e['task_3_stacks_cpu_s']:.2f} "
            f"| {s['hits_found']}/{s['hits_total']} | {s['other_changed_fraction']:.1e} "
            f"| {s['bead_pixels_changed']}/{s['bead_pixels']} "
            f"| {y['hit_pixels_found']}/{y['hit_pixels']} | {y['other_changed_fraction']:.1e} "
            f"| {y['bead_pixels_changed']}/{y['bead_pixels']} |"
        )
    if "before" in r:
        lines += [
            "",
            (
                f"Speed-up on `small`: {r['before']['small_s'] / r['after']['small_s']:.0f}× wall, "
                f"{r['before']['small_cpu_s'] / r['after']['small_cpu_s']:.0f}× CPU; "
                f"issue 15 target ≤ 5 s for the 41 × 1024² series on 2 cores: {r['after']['small_s']:.2f} s "
                f"(the protocol's three stacks with their I/O: {r['after']['task_3_stacks_s']:.2f} s)."
            ),
        ]
    replace_section(START, END, lines)


if __name__ == "__main__":
    main()
