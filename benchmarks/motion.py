"""Benchmark: motion correction on the simulator's `small` preset (7 tilts) against the true frame shifts,
beside RELION 3.1's own implementation and teamtomo's torch-motion-correction, on the same movies.

    python benchmarks/motion.py [--tilts 7] [--repeats 3] [--outdir /tmp/bench_motion] [--no-write]

Measured, per tilt series (7 movies of 8 frames of 1024², int16 MRC, with a gain reference):

- tomoforge, whole process: ``protocols.motion.motion_correct_task``, what the motion-correction protocol
  runs per tilt series: read the movies, gain, hot-pixel masking, global alignment, dose-weighted aligned
  sums with odd/even halves, three MRC stacks, the shift table and plot written. The first call in the
  process, the median of the warm calls, and a fresh Python process doing one tilt series (interpreter
  start and ``import torch`` included).
- tomoforge, estimation only: ``hot_pixel_mask`` (once, first movie) + ``estimate_global_shifts`` (its rfft
  included) on gain-corrected frames in memory.
- teamtomo torch-motion-correction ``estimate_global_motion`` (defaults), estimation only, if importable.
- RELION 3.1 ``relion_run_motioncorr --use_own`` (if on PATH), whole process (reads the movies and the
  gain, corrects defects, aligns, writes each sum, its STAR, log and EPS plot), global only, ``--j`` threads,
  without and with ``--dose_weighting``; outputs in <outdir>/runs, never in the repository.

Wall and CPU seconds (CPU: this process's threads, or RELION's via getrusage of children); each figure is
the median over ``--repeats`` rounds, with the load average of the (shared) machine before each round.
Error: RMS over frames of the (x, y) shift error in pixels after removing each movie's mean, per tilt
and overall. RELION's and teamtomo's sign conventions are fitted once per axis over all tilts; ours is
the truth's (no fit). Prints one JSON object and rewrites the motion section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

# OpenMP threads that sleep when idle instead of spinning: on a shared machine spinning threads fight the
# other processes for the cores (measured at load 9 on 2 cores: 6–15 s per tilt series spinning, 1.5 s
# passive; on an idle machine the two are alike). Set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from results_md import machine_info  # noqa: E402 - the benchmarks folder, run as a script

from tomoforge.io.movies import read_gain, read_movie  # noqa: E402
from tomoforge.methods.preprocess.gain import apply_gain  # noqa: E402
from tomoforge.methods.preprocess.motion import estimate_global_shifts, hot_pixel_mask  # noqa: E402
from tomoforge.protocols.preprocess.motion import MotionJob, MotionParams, MovieSource, motion_correct_task  # noqa: E402

RESULTS = Path(__file__).with_name("RESULTS.md")
START, END = "<!-- motion:start -->", "<!-- motion:end -->"
RELION_ARGS = ["--use_own", "--bin_factor", "1", "--bfactor", "150", "--patch_x", "1", "--patch_y", "1"]
PARAMS = {"dose_weighting": True, "odd_even": True}  # the rest: the protocol's defaults


def rms_px(est_px: np.ndarray, true_px: np.ndarray) -> float:
    e = (est_px - est_px.mean(0)) - (true_px - true_px.mean(0))
    return float(np.sqrt((e**2).sum(1).mean()))


def fitted_errors(shifts: list[np.ndarray], trues: list[np.ndarray]) -> tuple[list[float], list[int]]:
    """Per-tilt errors after fitting one sign per axis over all tilts (for peers with other conventions)."""
    signs = min(
        ([sx, sy] for sx in (1, -1) for sy in (1, -1)),
        key=lambda sg: sum(rms_px(s * np.array(sg), t) ** 2 for s, t in zip(shifts, trues)),
    )
    return [rms_px(s * np.array(signs), t) for s, t in zip(shifts, trues)], signs


def clock() -> tuple[float, float, float]:
    """(wall, this process's CPU, children's CPU) seconds."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter(), time.process_time(), children.ru_utime + children.ru_stime


def since(start: tuple[float, float, float]) -> dict[str, float]:
    now = clock()
    return {"wall_s": now[0] - start[0], "cpu_s": now[1] - start[1], "child_cpu_s": now[2] - start[2]}


def task_movies(truth: dict, folder: Path) -> tuple[MovieSource, ...]:
    n = len(truth["tilts"][0]["frame_shifts_A"])
    return tuple(
        MovieSource(
            file=str(folder / "frames" / Path(t["movie"]).name),
            n_frames=n,
            frame_dose_e_A2=t["dose"] / n,
            pre_exposure_e_A2=t["pre_exposure"],
            dose_e_A2=t["dose"],
        )
        for t in truth["tilts"]
    )


def ours_whole(truth: dict, folder: Path, out: Path) -> tuple[dict, list[np.ndarray]]:
    """One tilt series through the protocol's task; (timing, per-tilt (x, y) shifts in px)."""
    shutil.rmtree(out, ignore_errors=True)  # like RELION's run: new files, not replacements
    out.mkdir(parents=True)
    job = MotionJob(
        movies=task_movies(truth, folder),
        out_base=str(out / "TS_01"),
        pixel_size_A=truth["pixel_size_A"],
        voltage_kV=truth["voltage_kV"],
        gain_file=str(folder / "gain.mrc"),
        params=MotionParams(**PARAMS),
    )
    start = clock()
    result = motion_correct_task(job)
    timing = since(start)
    return timing, [np.asarray(s) / truth["pixel_size_A"] for s in result["shifts_A"]]


def ours_estimation(movies: list[torch.Tensor], pixel: float) -> list[np.ndarray]:
    """Per movie (x, y) px; the hot pixels found in the first movie's sum, as the protocol does."""
    bfactor = MotionParams().bfactor_A2
    defects = hot_pixel_mask(movies[0].sum(0))
    return [estimate_global_shifts(f, pixel, bfactor, defects=defects).numpy()[:, ::-1] for f in movies]


def teamtomo(movies: list[torch.Tensor], pixel: float) -> list[np.ndarray] | None:
    try:
        from torch_motion_correction import estimate_global_motion
    except ImportError:
        return None
    shifts = []
    for frames in movies:
        field = estimate_global_motion(frames, pixel_spacing=pixel)
        shifts.append(field.data[:, :, 0, 0].T.cpu().numpy()[:, ::-1] / pixel)  # (t, 2) (x, y) px
    return shifts


def relion_movies_star(movies: list[str], pixel: float, voltage: float, cs: float, amp: float) -> str:
    """A RELION 3.1 movies STAR file (data_optics + data_movies), one optics group."""
    rows = "\n".join(f"{m} 1" for m in movies)
    return (
        "\n# version 30001\n\ndata_optics\n\nloop_\n_rlnOpticsGroupName #1\n_rlnOpticsGroup #2\n"
        "_rlnMicrographOriginalPixelSize #3\n_rlnVoltage #4\n_rlnSphericalAberration #5\n"
        f"_rlnAmplitudeContrast #6\nopticsGroup1 1 {pixel:.6f} {voltage:.6f} {cs:.6f} {amp:.6f}\n\n"
        "# version 30001\n\ndata_movies\n\nloop_\n_rlnMicrographMovieName #1\n_rlnOpticsGroup #2\n"
        f"{rows}\n"
    )


def relion(
    truth: dict, folder: Path, workdir: Path, dose_weighting: bool, threads: int
) -> tuple[dict, list[np.ndarray], str] | None:
    """relion_run_motioncorr --use_own on all movies of the tilt series: (timing, per-tilt (x, y) px, command)."""
    exe = shutil.which("relion_run_motioncorr")
    if exe is None:
        return None
    import starfile

    if workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "movies").mkdir(parents=True)
    names = []
    for i, m in enumerate(truth["tilts"]):  # plain names: RELION rewrites dots in output names
        (workdir / "movies" / f"m{i:03d}.mrc").symlink_to((folder / "frames" / Path(m["movie"]).name).resolve())
        names.append(f"movies/m{i:03d}.mrc")
    (workdir / "movies.star").write_text(
        relion_movies_star(
            names, truth["pixel_size_A"], truth["voltage_kV"], truth["cs_mm"], truth["amplitude_contrast"]
        )
    )
    dose = truth["tilts"][0]["dose"] / len(truth["tilts"][0]["frame_shifts_A"])
    cmd = [
        exe,
        "--i",
        "movies.star",
        "--o",
        "MC/",
        *RELION_ARGS,
        "--j",
        str(threads),
        "--dose_per_frame",
        f"{dose:g}",
        "--gainref",
        str((folder / "gain.mrc").resolve()),
    ] + (["--dose_weighting"] if dose_weighting else [])
    start = clock()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    timing = since(start)
    shifts = []
    for i in range(len(names)):
        star = workdir / "MC" / "movies" / f"m{i:03d}.star"
        if not star.exists():
            raise RuntimeError(
                f"RELION wrote no {star} (rc {proc.returncode}): {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
            )
        g = starfile.read(star)["global_shift"]
        shifts.append(g[["rlnMicrographShiftX", "rlnMicrographShiftY"]].to_numpy(float))
    return timing, shifts, " ".join(Path(c).name if c == exe else c for c in cmd)


def one_shot(folder: Path, out: Path) -> None:
    """--one-shot: one tilt series in this (fresh) process; prints the task's own timing."""
    from tomoforge.simulate.truth import read_truth

    timing, _ = ours_whole(read_truth(folder / "truth" / "TS_01" / "truth.json"), folder, out)
    print(json.dumps(timing))


def simulate_if_needed(out: Path, tilts: int) -> dict:
    from tomoforge.simulate.run import simulate
    from tomoforge.simulate.truth import read_truth

    overrides = {"acquisition.tilt_series_count": 1}
    if tilts:
        overrides.update(
            {
                "acquisition.tilt_min_deg": -30.0,
                "acquisition.tilt_max_deg": 30.0,
                "acquisition.tilt_step_deg": 60.0 / max(tilts - 1, 1),
            }
        )
    if not (out / "simulation.json").exists():
        simulate(out, preset="small", seed=0, overrides=overrides)
    return read_truth(out / "truth" / "TS_01" / "truth.json")


def median(rounds: list[dict], key: str) -> dict[str, float] | None:
    values = [r[key] for r in rounds if r.get(key)]
    if not values:
        return None
    return {k: round(statistics.median(v[k] for v in values), 3) for k in values[0]}


def one_round(truth: dict, folder: Path, out: Path, frames: list[torch.Tensor], threads: int) -> tuple[dict, dict]:
    """Timings of every method once, and their per-tilt shifts (x, y) px."""
    pixel = truth["pixel_size_A"]
    timing: dict = {"load_before": round(os.getloadavg()[0], 2)}
    shifts: dict = {}
    timing["tomoforge_whole"], shifts["tomoforge"] = ours_whole(truth, folder, out / "tomoforge")
    for name, fn in (("tomoforge_estimation", ours_estimation), ("teamtomo_estimation", teamtomo)):
        start = clock()
        est = fn(frames, pixel)
        if est is not None:
            timing[name], shifts[name] = since(start), est
    for dw in (False, True):
        rel = relion(truth, folder, out / "relion", dw, threads)
        if rel is not None:
            name = "relion_whole" + ("_dose_weighted" if dw else "")
            timing[name], shifts[name], timing[name + "_command"] = rel
    return timing, shifts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tilts", type=int, default=7, help="tilts (−30…30°); 0 = the preset's")
    ap.add_argument("--repeats", type=int, default=3, help="rounds; figures are medians")
    ap.add_argument("--outdir", default="/tmp/bench_motion")
    ap.add_argument("--threads", type=int, default=2, help="torch threads, and RELION's --j")
    ap.add_argument("--no-write", action="store_true", help="do not update benchmarks/RESULTS.md")
    ap.add_argument("--one-shot", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    folder = Path(args.outdir)
    torch.set_num_threads(args.threads)
    if args.one_shot:
        return one_shot(folder, folder / "runs" / "cold")
    truth = simulate_if_needed(folder, args.tilts)
    pixel = truth["pixel_size_A"]
    trues = [np.asarray(t["frame_shifts_A"]) / pixel for t in truth["tilts"]]
    gain = read_gain(folder / "gain.mrc")
    frames = [
        apply_gain(torch.from_numpy(read_movie(folder / "frames" / Path(t["movie"]).name, dtype=None)), gain)
        for t in truth["tilts"]
    ]

    start = clock()  # a fresh process: interpreter, imports and one tilt series
    proc = subprocess.run(
        [sys.executable, __file__, "--one-shot", "--outdir", str(folder), "--threads", str(args.threads)],
        capture_output=True,
        text=True,
    )
    cold = (
        {**since(start), "task": json.loads(proc.stdout.strip().splitlines()[-1])}
        if proc.returncode == 0
        else {"error": proc.stderr[-2000:]}
    )
    rounds, shifts = [], {}
    for _ in range(max(1, args.repeats)):
        timing, shifts = one_round(truth, folder, folder / "runs", frames, args.threads)
        rounds.append(timing)
    errors: dict = {}
    for name, est in shifts.items():
        if name == "tomoforge" or name == "tomoforge_estimation":
            per, signs = [rms_px(s, t) for s, t in zip(est, trues)], [1, 1]
        else:
            per, signs = fitted_errors(est, trues)
        errors[name] = {
            "overall_px": round(float(np.sqrt(np.mean(np.square(per)))), 4),
            "per_tilt_px": [round(e, 4) for e in per],
            "fitted_sign_xy": signs,
        }
    keys = [k for k in rounds[0] if k != "load_before" and not k.endswith("_command")]
    result = {
        "benchmark": "motion-global",
        "preset": "small",
        "tilts": len(trues),
        "frames": int(frames[0].shape[0]),
        "image": list(frames[0].shape[-2:]),
        "pixel_size_A": pixel,
        "dose_per_frame_e_A2": truth["tilts"][0]["dose"] / len(trues[0]),
        "true_motion_rms_px": round(float(np.sqrt(np.mean([(t**2).sum(1).mean() for t in trues]))), 4),
        "tomoforge_params": {k: v for k, v in MotionParams(**PARAMS).model_dump().items()},
        "errors": errors,
        "first_call": rounds[0]["tomoforge_whole"],
        "fresh_process": cold,
        "median": {k: median(rounds[1:] if k == "tomoforge_whole" and len(rounds) > 1 else rounds, k) for k in keys},
        "rounds": rounds,
        "machine": machine(),
    }
    print(json.dumps(result, indent=1, default=str))
    if not args.no_write:
        write_section(result)


def machine() -> dict:
    """The shared machine description, with RELION's version and the OpenMP wait policy."""
    relion_version = ""
    if shutil.which("relion_run_motioncorr"):
        out = subprocess.run(["relion_run_motioncorr", "--version"], capture_output=True, text=True).stdout
        relion_version = " ".join(out.split())
    return {
        **machine_info(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "relion": relion_version,
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def write_section(r: dict) -> None:
    """The motion section of RESULTS.md (between the markers), from one run of this script."""
    m, med, err = r["machine"], r["median"], r["errors"]

    def t(key: str) -> str:
        v = med.get(key)
        return f"{v['wall_s']:.2f} | {v['cpu_s'] + v['child_cpu_s']:.2f}" if v else "– | –"

    def e(key: str) -> str:
        v = err.get(key)
        return f"{v['overall_px']:.3f} | {min(v['per_tilt_px']):.2f}–{max(v['per_tilt_px']):.2f}" if v else "– | –"

    rows = [
        (
            "tomoforge `motion-correction` task: read, gain, hot pixels, align, dose-weighted sum + odd/even, write 3 stacks",
            "tomoforge",
            "tomoforge_whole",
        ),
        (
            "RELION 3.1 `relion_run_motioncorr --use_own` (read, gain, defects, align, write sum, STAR, log, EPS)",
            "relion_whole",
            "relion_whole",
        ),
        ("RELION 3.1, same with `--dose_weighting`", "relion_whole_dose_weighted", "relion_whole_dose_weighted"),
        (
            "tomoforge estimation only: `hot_pixel_mask` (first movie) + `estimate_global_shifts`, frames in memory",
            "tomoforge_estimation",
            "tomoforge_estimation",
        ),
        (
            "teamtomo torch-motion-correction 0.6 `estimate_global_motion`, estimation only",
            "teamtomo_estimation",
            "teamtomo_estimation",
        ),
    ]
    table = [
        "| method (per tilt series of 7 movies) | RMS error (px) | per tilt (px) | wall (s) | CPU (s) |",
        "|---|---:|---|---:|---:|",
    ]
    table += [f"| {label} | {e(ek)} | {t(tk)} |" for label, ek, tk in rows if tk in med and med[tk]]
    first, cold = r["first_call"], r["fresh_process"]

    def ratio(other: str) -> str:
        a, b = med.get("tomoforge_whole"), med.get(other)
        if not a or not b:
            return "–"
        cpu = (b["cpu_s"] + b["child_cpu_s"]) / max(a["cpu_s"] + a["child_cpu_s"], 1e-9)
        return f"{b['wall_s'] / a['wall_s']:.2f} (wall), {cpu:.2f} (CPU)"

    verdict = (
        f"RELION's time over tomoforge's, whole process against whole task on the same movies (> 1: tomoforge "
        f"is faster): {ratio('relion_whole_dose_weighted')} with dose weighting in both (tomoforge also writes "
        f"the odd/even sums); {ratio('relion_whole')} against RELION without dose weighting."
    )
    loads = [x["load_before"] for x in r["rounds"]]
    command = r["rounds"][0].get("relion_whole_dose_weighted_command") or r["rounds"][0].get("relion_whole_command", "")
    lines = [
        START,
        "## Motion correction (global), `python benchmarks/motion.py`",
        "",
        f"{m['date']}, commit {m['git']}, {m['nproc']} cores ({m['cpu']}), torch {m['torch']} ({m['torch_threads']} "
        f"threads, OMP_WAIT_POLICY={m['omp_wait_policy'] or 'unset'}), {m['relion'] or 'RELION absent'} (`--j` "
        f"{m['torch_threads']}). Shared machine: load average {min(loads):.1f}–{max(loads):.1f} "
        f"before the {len(loads)} rounds (median shown; the warm tomoforge figure excludes the first round).",
        f"Data: simulator `small` preset, seed 0, 1 tilt series of {r['tilts']} tilts (−30…30°), {r['frames']} frames of "
        f"{r['image'][0]}² int16 at {r['pixel_size_A']:g} Å/px, gain reference, {r['dose_per_frame_e_A2']:g} e/Å² per "
        f"frame; true motion {r['true_motion_rms_px']} px RMS per frame. Error: RMS of the per-frame (x, y) shift error "
        "after removing each movie's mean.",
        "",
        *table,
        "",
        verdict,
        "",
        f"tomoforge's first call in a process: {first['wall_s']:.2f} s; a fresh Python process doing one tilt series "
        f"(interpreter start, `import torch`, the task): {cold.get('wall_s', float('nan')):.2f} s wall. tomoforge params: "
        f"B = {r['tomoforge_params']['bfactor_A2']:g} Å², dose weighting, odd/even sums; RELION's and teamtomo's sign "
        "conventions fitted per axis over all tilts (RELION: −rlnMicrographShift). CPU = user + system seconds of all threads.",
        "",
        "RELION command (in <outdir>/runs/relion, movies symlinked as movies/m000.mrc…):",
        "",
        f"    {command}",
        END,
    ]
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n"
    section = "\n".join(lines)
    if START in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: section, text, flags=re.S)
    else:
        text = section + "\n\n" + text.lstrip("\n")
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
