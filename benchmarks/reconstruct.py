"""Benchmark of tomogram reconstruction: tomoforge WBP / SIRT beside astra-toolbox (CPU FBP and SIRT, 2D
slice by slice, parallel beam, single-threaded), teamtomo's torch-tomogram ``reconstruct_tomogram`` and
scikit-image's ``iradon``, on the same aligned tilt series and volume.

Data: the simulator's `small` preset (seed 1; TOMOFORGE_SMALL_SIMULATION reuses a finished folder), its
noise-free tilt series with shot noise, binned by 2 to 41 × 512² at 6 Å, interpolated with the true
alignment (tilt axis vertical, shifts removed) so that every program reconstructs the same 2D problem per
row: 41 tilts × 512 rows → 256 (z) × 512 (y) × 512 (x). tomoforge is also run on the raw (not interpolated)
stack with the full projection model applied on the fly.

Each method runs in a fresh process: time (wall), peak resident memory above the process's RSS before the
data was loaded (so the tilt series and the tomogram are included), and a central slab of the result to
correlate with tomoforge's. Voxel updates per second = 256·512·512 voxels × 41 tilts / time.

    python benchmarks/reconstruct.py [--outdir /tmp/tomoforge-bench-reconstruct] [--skip teamtomo skimage]
        [--no-write] [--iradon-rows 32]

Prints one JSON object and rewrites the reconstruct section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from results_md import machine_info, replace_section  # noqa: E402

START, END = "<!-- reconstruct:start -->", "<!-- reconstruct:end -->"
SHAPE = (256, 512, 512)  # z, y, x
PIXEL_A = 6.0
LOW_PASS = 0.2  # cycles/voxel: the band in which the programs' results are compared
SLOW = ("teamtomo", "skimage_iradon")  # run once
METHODS = (
    "tomoforge_wbp",
    "tomoforge_wbp_1thread",
    "tomoforge_wbp_raw",
    "tomoforge_sirt1",
    "tomoforge_sirt3",
    "astra_fbp",
    "astra_sirt1",
    "teamtomo",
    "skimage_iradon",
)


def rss_mb() -> float:
    """Current resident memory (MB) of this process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- data ------------------------------------------------------------------------------------------
def prepare(outdir: Path) -> Path:
    """Write data.npz: raw binned stack, its geometry, the aligned stack and its tilts (once)."""
    path = outdir / "data.npz"
    if path.exists():
        return path
    import torch

    from tomoforge.io.mrc import read_mrc
    from tomoforge.methods.align.transform import aligned_stack
    from tomoforge.methods.binning import bin_images
    from tomoforge.simulate import load_simulation, simulate

    reuse = os.environ.get("TOMOFORGE_SMALL_SIMULATION")
    sim = load_simulation(reuse) if reuse else simulate(outdir / "small", preset="small", seed=1, progress=False)
    ts = sim.tilt_series[0]
    counts = np.random.default_rng(0).poisson(read_mrc(ts.noise_free_stack)).astype(np.float32)
    raw = bin_images(torch.from_numpy(counts), 2)
    del counts
    t = ts.truth["tilts"]
    tilt = np.array([r["y_tilt_deg"] for r in t])
    z_rot = np.array([r["z_rot_deg"] for r in t])
    shift_A = np.array([[r["x_shift_A"], r["y_shift_A"]] for r in t])
    aligned = aligned_stack(raw, z_rot, shift_A / PIXEL_A)
    order = np.argsort(tilt)
    outdir.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        raw=raw.numpy()[order],
        tilt=tilt[order],
        z_rot=z_rot[order],
        shift_A=shift_A[order],
        aligned=aligned.numpy()[order],
    )
    return path


# --- workers (one per fresh process) ----------------------------------------------------------------
def run_tomoforge(data, name: str) -> np.ndarray:
    import torch

    from tomoforge.methods.align.projection_model import ProjectionModel
    from tomoforge.methods.reconstruct import VolumeGeometry, reconstruct_sirt, reconstruct_wbp

    if name.endswith("1thread"):
        torch.set_num_threads(1)
    volume = VolumeGeometry(SHAPE, PIXEL_A)
    if name == "tomoforge_wbp_raw":
        geometry = ProjectionModel(data["tilt"], data["z_rot"], data["shift_A"])
        images = data["raw"]
    else:
        geometry = ProjectionModel(data["tilt"], 0.0, np.zeros((len(data["tilt"]), 2)))
        images = data["aligned"]
    if name.startswith("tomoforge_sirt"):
        return reconstruct_sirt(images, PIXEL_A, geometry, volume, iterations=int(name[-1])).numpy()
    return reconstruct_wbp(images, PIXEL_A, geometry, volume).numpy()


def run_astra(data, name: str) -> np.ndarray:
    import astra

    aligned, tilt = data["aligned"], data["tilt"]
    nz, ny, nx = SHAPE
    vol_geom = astra.create_vol_geom(nz, nx)
    proj_geom = astra.create_proj_geom("parallel", 1.0, aligned.shape[2], np.deg2rad(tilt))
    projector = astra.create_projector("linear", proj_geom, vol_geom)
    sino_id = astra.data2d.create("-sino", proj_geom, 0)
    rec_id = astra.data2d.create("-vol", vol_geom, 0)
    cfg = astra.astra_dict("FBP" if name == "astra_fbp" else "SIRT")
    cfg.update(ProjectorId=projector, ProjectionDataId=sino_id, ReconstructionDataId=rec_id)
    alg = astra.algorithm.create(cfg)
    out = np.empty(SHAPE, np.float32)
    for y in range(ny):
        astra.data2d.store(sino_id, aligned[:, y, :])
        astra.data2d.store(rec_id, 0)
        astra.algorithm.run(alg, 1)
        out[:, y, :] = astra.data2d.get_shared(rec_id)
    return out


def run_teamtomo(data, name: str) -> np.ndarray:
    import torch
    from torch_tomogram import Tomogram

    n = len(data["tilt"])
    tomo = Tomogram(
        tilt_angles=torch.as_tensor(data["tilt"]),
        tilt_axis_angle=torch.zeros(n),
        sample_translations=torch.zeros(n, 2),
        images=torch.as_tensor(data["aligned"]),
    )
    return tomo.reconstruct_tomogram(SHAPE, sidelength=128).numpy()


def run_skimage(data, name: str, rows: int) -> np.ndarray:
    from skimage.transform import iradon

    aligned, tilt = data["aligned"], data["tilt"]
    nz, ny, nx = SHAPE
    out = np.zeros(SHAPE, np.float32)
    y0 = ny // 2 - rows // 2
    for y in range(y0, y0 + rows):
        square = iradon(aligned[:, y, :].T, theta=tilt, output_size=nx, filter_name="ramp", circle=False)
        out[:, y, :] = square[nx // 2 - nz // 2 : nx // 2 - nz // 2 + nz]
    return out


def import_for(name: str) -> None:
    """Import what ``name`` uses, so that the baseline RSS includes the libraries."""
    import torch  # noqa: F401 - every method's process has it (the data goes through numpy)

    if name.startswith("tomoforge"):
        import tomoforge.methods.reconstruct  # noqa: F401
    elif name.startswith("astra"):
        import astra  # noqa: F401
    elif name == "teamtomo":
        import torch_tomogram  # noqa: F401
    else:
        import skimage.transform  # noqa: F401


def worker(name: str, data_path: str, outdir: str, iradon_rows: int) -> None:
    import_for(name)
    base = rss_mb()
    data = dict(np.load(data_path))
    keep = "raw" if name == "tomoforge_wbp_raw" else "aligned"
    data.pop("aligned" if keep == "raw" else "raw")
    loaded = rss_mb()
    load = os.getloadavg()[0]
    start = time.perf_counter()
    cpu0 = time.process_time()
    if name.startswith("tomoforge"):
        volume = run_tomoforge(data, name)
    elif name.startswith("astra"):
        volume = run_astra(data, name)
    elif name == "teamtomo":
        volume = run_teamtomo(data, name)
    else:
        volume = run_skimage(data, name, iradon_rows)
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    rows = iradon_rows if name == "skimage_iradon" else SHAPE[1]
    ny = SHAPE[1]
    np.save(Path(outdir) / f"{name}_slab.npy", volume[:, ny // 2 - 8 : ny // 2 + 8, :])
    print(
        json.dumps(
            {
                "name": name,
                "wall_s": wall,
                "cpu_s": cpu,
                "rows_done": rows,
                "wall_s_full": wall * ny / rows,
                "rss_base_MB": base,
                "rss_loaded_MB": loaded,
                "peak_MB": peak_mb(),
                "load_before": load,
            }
        )
    )


# --- driver -------------------------------------------------------------------------------------------
def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def low_pass(slab: np.ndarray, cutoff: float = LOW_PASS) -> np.ndarray:
    """Each row (z, x) of a (z, rows, x) slab keeping |(kz, kx)| ≤ ``cutoff`` cycles/voxel: the comparison
    leaves out the programs' different high-frequency filters (and the noise they pass)."""
    spec = np.fft.rfft2(slab, axes=(0, 2))
    kz = np.fft.fftfreq(slab.shape[0])[:, None, None]
    kx = np.fft.rfftfreq(slab.shape[2])[None, None, :]
    return np.fft.irfft2(spec * (np.hypot(kz, kx) <= cutoff), s=(slab.shape[0], slab.shape[2]), axes=(0, 2))


def best_match(ref: np.ndarray, other: np.ndarray) -> tuple[float, str]:
    """r of ``other`` against ``ref`` (both low-passed) in the central half in z and x (the programs treat
    the edges of the field differently), best over the flips a convention may differ by (z, x)."""
    best = (0.0, "")
    centre = (slice(SHAPE[0] // 4, 3 * SHAPE[0] // 4), slice(None), slice(SHAPE[2] // 4, 3 * SHAPE[2] // 4))
    ref = low_pass(ref)[centre]
    for label, v in (
        ("", other),
        ("z-flip", other[::-1]),
        ("x-flip", other[:, :, ::-1]),
        ("z,x-flip", other[::-1, :, ::-1]),
    ):
        r = pearson(ref, low_pass(np.ascontiguousarray(v))[centre])
        if abs(r) > abs(best[0]):
            best = (r, label)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--outdir", default="/tmp/tomoforge-bench-reconstruct")
    ap.add_argument("--skip", nargs="*", default=[])
    ap.add_argument("--only", nargs="*", default=[])
    ap.add_argument("--iradon-rows", type=int, default=32, help="rows iradon does (the time is scaled to 512)")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each method (teamtomo, iradon: 1); median shown")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--worker", default="")
    ap.add_argument("--data", default="")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.outdir, args.iradon_rows)
        return
    outdir = Path(args.outdir)
    data = prepare(outdir)
    results = {}
    names = [n for n in (args.only or METHODS) if not any(n.startswith(s) for s in args.skip)]
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for round_ in range(args.rounds):  # rounds interleaved, so that a change of load hits every method alike
        for name in names:
            if round_ and name in SLOW or runs[name] and "error" in runs[name][0]:
                continue
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                name,
                "--data",
                str(data),
                "--outdir",
                str(outdir),
                "--iradon-rows",
                str(args.iradon_rows),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                runs[name].append({"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"})
                continue
            runs[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    results = {name: median_run(r) for name, r in runs.items() if r}
    summarise(results, outdir)
    report = {"machine": machine(), "shape_zyx": SHAPE, "tilts": 41, "results": results}
    print(json.dumps(report, indent=1))
    if not args.no_write:
        write_section(report)


def median_run(runs: list[dict]) -> dict:
    """The run of median wall time, with the range of all runs."""
    if "error" in runs[0]:
        return runs[0]
    ordered = sorted(runs, key=lambda r: r["wall_s_full"])
    out = dict(ordered[len(ordered) // 2])
    out["rounds"] = len(runs)
    out["wall_s_range"] = [ordered[0]["wall_s_full"], ordered[-1]["wall_s_full"]]
    out["load_range"] = [min(r["load_before"] for r in runs), max(r["load_before"] for r in runs)]
    return out


def summarise(results: dict, outdir: Path) -> None:
    updates = np.prod(SHAPE) * 41
    data_mb = (np.prod(SHAPE) + 41 * 512 * 512) * 4 / 1e6
    for name, r in results.items():
        if "error" in r:
            continue
        r["updates_per_s"] = updates / r["wall_s_full"]
        r["memory_MB"] = r["peak_MB"] - r["rss_base_MB"]
        r["memory_vs_data"] = r["memory_MB"] / data_mb
        reference = "tomoforge_sirt1" if name == "astra_sirt1" else "tomoforge_wbp"
        ref_path, slab = outdir / f"{reference}_slab.npy", outdir / f"{name}_slab.npy"
        if name not in ("tomoforge_wbp", "tomoforge_sirt1", "tomoforge_sirt3") and ref_path.exists() and slab.exists():
            r["compared_with"] = reference
            r["r_vs_tomoforge"], r["flip"] = best_match(np.load(ref_path), np.load(slab))
    for ours, theirs in (
        ("tomoforge_wbp", "astra_fbp"),
        ("tomoforge_sirt1", "astra_sirt1"),
        ("tomoforge_wbp", "teamtomo"),
        ("tomoforge_wbp", "skimage_iradon"),
    ):
        if "wall_s_full" in results.get(ours, {}) and "wall_s_full" in results.get(theirs, {}):
            ratio = results[theirs]["wall_s_full"] / results[ours]["wall_s_full"]
            results[ours].setdefault("speedup", {})[theirs] = ratio
    s1, s3 = results.get("tomoforge_sirt1", {}), results.get("tomoforge_sirt3", {})
    if "wall_s" in s1 and "wall_s" in s3:
        s3["per_iteration_s"] = (s3["wall_s"] - s1["wall_s"]) / 2


def machine() -> dict:
    """The shared machine description, the comparison programs' versions and the load after the runs."""
    versions = {}
    for module in ("astra", "skimage", "torch_tomogram"):
        try:
            versions[module] = __import__(module).__version__
        except Exception:  # noqa: BLE001 - absent or without a version
            versions[module] = "absent"
    return {**machine_info(), **versions, "load_after": [round(x, 2) for x in os.getloadavg()]}


LABELS = {
    "tomoforge_wbp": "tomoforge `reconstruct_wbp` (aligned stack, 2 threads)",
    "tomoforge_wbp_1thread": "tomoforge `reconstruct_wbp` (aligned stack, 1 thread)",
    "tomoforge_wbp_raw": "tomoforge `reconstruct_wbp` (raw stack, projection model on the fly)",
    "tomoforge_sirt1": "tomoforge `reconstruct_sirt`, 1 iteration (with set-up)",
    "tomoforge_sirt3": "tomoforge `reconstruct_sirt`, 3 iterations",
    "astra_fbp": "astra-toolbox CPU `FBP` (linear projector, 2D per row, 1 thread)",
    "astra_sirt1": "astra-toolbox CPU `SIRT`, 1 iteration (linear projector, 2D per row)",
    "teamtomo": "teamtomo torch-tomogram `reconstruct_tomogram` (Fourier, tiles of 128)",
    "skimage_iradon": "scikit-image `iradon` (ramp, per row; timed on a few rows, scaled)",
}


def write_section(report: dict) -> None:
    m, res = report["machine"], report["results"]
    table = [
        "| method | wall s (whole volume) | CPU s | voxel updates/s (wall) | peak memory (MB, data incl.) "
        f"| × (volume + tilt series) | r vs tomoforge (≤ {LOW_PASS} cycles/voxel, central half) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in METHODS:
        r = res.get(name)
        if not r:
            continue
        if "error" in r:
            table.append(f"| {LABELS[name]} | failed: {r['error']} | | | | | |")
            continue
        corr = (
            f"{r['r_vs_tomoforge']:.3f} vs {r['compared_with'].replace('tomoforge_', '')} {r['flip']}".strip()
            if "r_vs_tomoforge" in r
            else "–"
        )
        scale = r["wall_s_full"] / r["wall_s"]
        spread = f" ({r['wall_s_range'][0]:.2f}–{r['wall_s_range'][1]:.2f})" if r.get("rounds", 1) > 1 else ""
        table.append(
            f"| {LABELS[name]} | {r['wall_s_full']:.2f}{spread} | {r['cpu_s'] * scale:.2f} | "
            f"{r['updates_per_s']:.3g} | "
            f"{r['memory_MB']:.0f} | {r['memory_vs_data']:.2f} | {corr} |"
        )
    ratios = []
    for ours, d in ((n, res[n]) for n in ("tomoforge_wbp", "tomoforge_sirt1") if n in res):
        for theirs, x in d.get("speedup", {}).items():
            ratios.append(f"{ours} is {x:.1f}× faster than {theirs}")
    floors = []
    wbp, sirt = res.get("tomoforge_wbp", {}), res.get("tomoforge_sirt1", {})
    if "speedup" in wbp and "astra_fbp" in wbp["speedup"]:
        floors.append(f"WBP ≥ 4× astra FBP: {wbp['speedup']['astra_fbp']:.1f}×")
    if "updates_per_s" in wbp:
        floors.append(f"WBP ≥ 1e9 voxel updates/s on 2 cores: {wbp['updates_per_s']:.3g}")
        floors.append(f"WBP peak memory ≤ 1.5× (volume + tilt series): {wbp['memory_vs_data']:.2f}×")
    if "speedup" in sirt and "astra_sirt1" in sirt["speedup"]:
        floors.append(f"one SIRT iteration ≥ 5× astra's: {sirt['speedup']['astra_sirt1']:.1f}×")
    per_it = res.get("tomoforge_sirt3", {}).get("per_iteration_s")
    loads = [x for r in res.values() if "load_range" in r for x in r["load_range"]]
    lines = [
        "## Tomogram reconstruction, `python benchmarks/reconstruct.py`",
        "",
        f"{m['date']}, commit {m['git']}, {m['nproc']} cores ({m['cpu']}), torch {m['torch']} "
        f"({m['torch_threads']} threads), astra {m['astra']}, scikit-image {m['skimage']}, torch-tomogram "
        f"{m['torch_tomogram']}. Shared machine: load average {min(loads):.1f}–{max(loads):.1f} before the runs "
        f"(after: {m['load_after']}); each method in a fresh process, rounds interleaved, median wall (range).",
        "Data: simulator `small` (seed 1), noise-free tilt series + shot noise, binned to 41 × 512² at 6 Å, "
        "interpolated with the true alignment; volume 256 (z) × 512 × 512. Memory: peak RSS of a fresh process "
        "above its RSS before loading the data (so the tilt series and the tomogram are included); "
        "volume + tilt series = 311 MB.",
        "",
        *table,
        "",
        "; ".join(ratios) + "." if ratios else "",
        "Issue 7 floors — " + "; ".join(floors) + "." if floors else "",
        f"SIRT per further iteration: {per_it:.2f} s." if per_it else "",
    ]
    replace_section(START, END, lines)


if __name__ == "__main__":
    main()
