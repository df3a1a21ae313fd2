"""Benchmark: CTF correction of one tilt series of the simulator's `small` preset (41 tilts of 1024²,
3 Å/px, ±60°) with its true CTF and geometry.

    python benchmarks/ctf_correct.py [--sim /tmp/tf_small] [--repeats 2] [--no-write]

Measured per tilt series (images in memory, no file I/O): ``methods.ctf_correct.correct_ctf_stack`` as the
ctf-correction protocol calls it: strip phase flip (defaults: ±100 Å tolerance, padding by the CTF's
delocalisation), the same with one defocus per view (no strips: what the strips cost), and the Wiener
filter. No peer runs here: IMOD's ctfphaseflip is not installed on this machine. Wall and CPU seconds,
median over ``--repeats`` rounds, with the load average of the (shared) machine before each round.
Prints one JSON object and rewrites the ctf_correct section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from tomoforge.io.mrc import read_mrc
from tomoforge.methods.ctf.correct import CorrectionSettings, Optics, correct_ctf_stack

sys.path.insert(0, str(Path(__file__).parent))
from results_md import machine_info, replace_section  # noqa: E402 - the benchmarks folder, run as a script

START, END = "<!-- ctf_correct:start -->", "<!-- ctf_correct:end -->"
VARIANTS = {
    "phase-flip, strips (defaults)": CorrectionSettings(),
    "phase-flip, one defocus per view": CorrectionSettings(defocus_tolerance_A=1e9),
    "Wiener (SNR 1), strips": CorrectionSettings(method="wiener"),
}


def load(sim: Path) -> tuple[torch.Tensor, dict]:
    if not (sim / "simulation.json").is_file():
        from tomoforge.simulate import simulate

        simulate(sim, preset="small", seed=1, progress=False)
    from tomoforge.simulate import load_simulation

    ts = load_simulation(sim).tilt_series[0]
    return torch.from_numpy(read_mrc(ts.noise_free_stack)), ts.truth


def correct(images: torch.Tensor, truth: dict, settings: CorrectionSettings) -> list[int]:
    t = truth["tilts"]
    optics = Optics(truth["voltage_kV"], truth["cs_mm"], truth["amplitude_contrast"])
    _, strips = correct_ctf_stack(
        images,
        truth["pixel_size_A"],
        [x["defocus_u_A"] for x in t],
        [x["defocus_v_A"] for x in t],
        [x["defocus_angle_deg"] for x in t],
        [x["y_tilt_deg"] for x in t],
        [x["z_rot_deg"] for x in t],
        [x["x_tilt_deg"] for x in t],
        [[x["x_shift_A"], x["y_shift_A"]] for x in t],
        optics=optics,
        settings=settings,
    )
    return strips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim", type=Path, default=Path("/tmp/tf_small"), help="a `small` seed-1 simulation folder")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-write", action="store_true", help="do not update benchmarks/RESULTS.md")
    args = ap.parse_args()
    images, truth = load(args.sim)
    rounds = []
    for _ in range(args.repeats):
        row: dict = {"load_before": round(os.getloadavg()[0], 2)}
        for name, settings in VARIANTS.items():
            wall, cpu = time.perf_counter(), time.process_time()
            strips = correct(images, truth, settings)
            row[name] = {
                "wall_s": time.perf_counter() - wall,
                "cpu_s": time.process_time() - cpu,
                "strips": sum(strips),
                "max_strips": max(strips),
            }
        rounds.append(row)
    median = {
        name: {k: statistics.median(r[name][k] for r in rounds) for k in ("wall_s", "cpu_s")}
        | {"strips": rounds[0][name]["strips"], "max_strips": rounds[0][name]["max_strips"]}
        for name in VARIANTS
    }
    result = {
        "machine": machine_info(),
        "views": int(images.shape[0]),
        "image": list(images.shape[1:]),
        "pixel_size_A": truth["pixel_size_A"],
        "rounds": rounds,
        "median": median,
        "load_after": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, indent=1))
    if not args.no_write:
        write_section(result)


def write_section(r: dict) -> None:
    m, loads = r["machine"], [x["load_before"] for x in r["rounds"]] + [r["load_after"]]
    table = [
        "| method (one tilt series) | strips (all views / most in a view) | wall (s) | CPU (s) | s per view |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, v in r["median"].items():
        table.append(
            f"| {name} | {v['strips']} / {v['max_strips']} | {v['wall_s']:.1f} | {v['cpu_s']:.1f} | "
            f"{v['wall_s'] / r['views']:.2f} |"
        )
    lines = [
        "## CTF correction, `python benchmarks/ctf_correct.py`",
        "",
        f"{m['date']}, commit {m['git']}, {m['nproc']} cores ({m['cpu']}), torch {m['torch']} "
        f"({m['torch_threads']} threads), CPU only. Shared machine: load average {min(loads):.1f}–{max(loads):.1f} "
        f"during the {len(r['rounds'])} rounds (median shown).",
        f"Data: simulator `small` preset, seed 1: {r['views']} views of {r['image'][0]}² at {r['pixel_size_A']:g} "
        "Å/px, ±60°, true CTF (defocus 2.5–4 µm, astigmatism) and projection model; images in memory.",
        "",
        *table,
        "",
        "No peer in this run (IMOD ctfphaseflip is not installed here). `correct_ctf_stack` is what the "
        "ctf-correction task runs between reading and writing the stacks (odd/even halves triple it).",
    ]
    replace_section(START, END, lines)


if __name__ == "__main__":
    main()
