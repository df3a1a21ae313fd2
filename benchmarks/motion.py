"""Benchmark: global frame alignment on the simulator's `small` preset against the true frame shifts.

    python benchmarks/motion.py [--tilts 7] [--outdir /tmp/bench_motion]

Compares tomoforge (``methods.motion.estimate_global_shifts``) with teamtomo's torch-motion-correction
(``estimate_global_motion``, if importable) and RELION 3.1's own implementation (``relion_run_motioncorr
--use_own``, if on PATH; global only: --patch_x 1 --patch_y 1, --bfactor 150, --bin_factor 1, --j 2, gain
reference passed with --gainref, one call for the whole tilt series, its wall time including RELION's own
movie I/O and writing of the aligned sums; outputs go to <outdir>/relion, never into the repository).
RELION's rlnMicrographShiftX/Y (px) are compared with the truth after fitting one sign per axis over all
tilts (the fitted signs are reported). Error = RMS over frames of the (x, y) shift error in
pixels after removing each movie's mean (the truth has mean 0 per movie), per tilt and overall.
Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from tomoforge.io.movies import read_gain, read_movie
from tomoforge.methods.gain import apply_gain
from tomoforge.methods.motion import estimate_global_shifts, without_hot_pixels


def rms_px(est_xy_A: np.ndarray, true_xy_A: np.ndarray, pixel: float) -> float:
    e = (est_xy_A - est_xy_A.mean(0)) - (true_xy_A - true_xy_A.mean(0))
    return float(np.sqrt((e ** 2).sum(1).mean()) / pixel)


def ours(frames: torch.Tensor, pixel: float) -> np.ndarray:
    s = estimate_global_shifts(without_hot_pixels(frames), pixel, bfactor_A2=1500.0).numpy()
    return s[:, ::-1] * pixel  # (x, y) Å


def teamtomo(frames: torch.Tensor, pixel: float) -> np.ndarray | None:
    try:
        from torch_motion_correction import estimate_global_motion
    except ImportError:
        return None
    field = estimate_global_motion(frames, pixel_spacing=pixel)
    yx = field.data[:, :, 0, 0].T.cpu().numpy()  # (t, 2) (y, x) Å
    return yx[:, ::-1]


RELION_ARGS = ["--use_own", "--bin_factor", "1", "--bfactor", "150", "--patch_x", "1", "--patch_y", "1", "--j", "2"]


def relion_movies_star(movies: list[str], pixel: float, voltage: float, cs: float, amp: float) -> str:
    """A RELION 3.1 movies STAR file (data_optics + data_movies), one optics group."""
    rows = "\n".join(f"{m} 1" for m in movies)
    return ("\n# version 30001\n\ndata_optics\n\nloop_\n_rlnOpticsGroupName #1\n_rlnOpticsGroup #2\n"
            "_rlnMicrographOriginalPixelSize #3\n_rlnVoltage #4\n_rlnSphericalAberration #5\n"
            f"_rlnAmplitudeContrast #6\nopticsGroup1 1 {pixel:.6f} {voltage:.6f} {cs:.6f} {amp:.6f}\n\n"
            "# version 30001\n\ndata_movies\n\nloop_\n_rlnMicrographMovieName #1\n_rlnOpticsGroup #2\n"
            f"{rows}\n")


def relion(movie_paths: list[Path], gain: Path, truth: dict, workdir: Path) -> tuple[list[np.ndarray], float, list[str]] | None:
    """Runs relion_run_motioncorr --use_own on all movies of a tilt series; per-movie (x, y) shifts in px."""
    exe = shutil.which("relion_run_motioncorr")
    if exe is None:
        return None
    import starfile
    if workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "movies").mkdir(parents=True)
    names = []
    for i, m in enumerate(movie_paths):  # plain names: RELION rewrites dots in output names
        (workdir / "movies" / f"m{i:03d}.mrc").symlink_to(m.resolve())
        names.append(f"movies/m{i:03d}.mrc")
    (workdir / "movies.star").write_text(relion_movies_star(
        names, truth["pixel_size_A"], truth["voltage_kv"], truth["cs_mm"], truth["amplitude_contrast"]))
    dose = truth["tilts"][0]["dose"] / len(truth["tilts"][0]["frame_shifts_A"])
    cmd = [exe, "--i", "movies.star", "--o", "MC/", *RELION_ARGS, "--dose_per_frame", f"{dose:g}",
           "--gainref", str(gain.resolve())]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    shifts = []
    for i in range(len(movie_paths)):
        star = workdir / "MC" / "movies" / f"m{i:03d}.star"
        if not star.exists():
            raise RuntimeError(f"RELION wrote no {star} (rc {proc.returncode}): {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        g = starfile.read(star)["global_shift"]
        shifts.append(g[["rlnMicrographShiftX", "rlnMicrographShiftY"]].to_numpy(float))
    return shifts, seconds, cmd


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tilts", type=int, default=7, help="tilts (−30…30°); 0 = the preset's")
    ap.add_argument("--outdir", default="/tmp/bench_motion")
    args = ap.parse_args()
    from tomoforge.simulate.run import simulate
    from tomoforge.simulate.truth import read_truth

    out = Path(args.outdir)
    overrides = {"acquisition.tilt_series_count": 1}
    if args.tilts:
        overrides.update({"acquisition.tilt_min_deg": -30.0, "acquisition.tilt_max_deg": 30.0,
                          "acquisition.tilt_step_deg": 60.0 / max(args.tilts - 1, 1)})
    if not (out / "simulation.json").exists():
        simulate(out, preset="small", seed=0, overrides=overrides)
    truth = read_truth(out / "truth" / "TS_01" / "truth.json")
    pixel = float(json.loads((out / "simulation.json").read_text())["config"]["detector"]["pixel_size_A"]) \
        if "config" in json.loads((out / "simulation.json").read_text()) else 3.0
    gain = read_gain(out / "gain.mrc")
    rows, totals = [], {"tomoforge": [], "teamtomo": []}
    times = {"tomoforge": 0.0, "teamtomo": 0.0}
    for tilt in truth["tilts"]:
        frames = apply_gain(torch.from_numpy(read_movie(out / "frames" / Path(tilt["movie"]).name)), gain)
        true = np.asarray(tilt["frame_shifts_A"])
        row = {"tilt_deg": tilt["nominal_tilt_deg"], "frames": int(frames.shape[0])}
        for name, fn in (("tomoforge", ours), ("teamtomo", teamtomo)):
            t0 = time.perf_counter()
            est = fn(frames, pixel)
            if est is None:
                continue
            times[name] += time.perf_counter() - t0
            err = min(rms_px(est, true, pixel), rms_px(-est, true, pixel))  # sign conventions differ
            row[f"{name}_rms_px"] = round(err, 4)
            totals[name].append(err)
        rows.append(row)
    rel = relion([out / "frames" / Path(t["movie"]).name for t in truth["tilts"]], out / "gain.mrc",
                 truth, out / "relion")
    relion_info = None
    if rel is not None:
        shifts, seconds, cmd = rel
        trues = [np.asarray(t["frame_shifts_A"]) / pixel for t in truth["tilts"]]
        signs = min(((sx, sy) for sx in (1, -1) for sy in (1, -1)), key=lambda sg: sum(
            rms_px(s * np.array(sg), tr, 1.0) ** 2 for s, tr in zip(shifts, trues)))
        totals["relion"] = []
        for row, s, tr in zip(rows, shifts, trues):
            err = rms_px(s * np.array(signs), tr, 1.0)
            row["relion_rms_px"] = round(err, 4)
            totals["relion"].append(err)
        times["relion"] = seconds
        relion_info = {"command": " ".join(cmd),
                       "fitted_sign_xy": list(signs),
                       "convention": f"truth_px = ({signs[0]:+d} rlnMicrographShiftX, {signs[1]:+d} rlnMicrographShiftY)"}
    result = {
        "benchmark": "motion-global", "preset": "small", "image": list(frames.shape[-2:]),
        "pixel_size_A": pixel, "tilts": len(rows), "true_motion_rms_px": round(float(np.sqrt(np.mean(
            [((np.asarray(t["frame_shifts_A"]) / pixel) ** 2).sum(1).mean() for t in truth["tilts"]]))), 4),
        "overall_rms_px": {k: round(float(np.sqrt(np.mean(np.square(v)))), 4) for k, v in totals.items() if v},
        "seconds_per_tilt_series": {k: round(v, 2) for k, v in times.items() if totals[k]},
        "relion": relion_info, "per_tilt": rows, "machine": {"nproc": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                                      "torch_threads": torch.get_num_threads()},
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
