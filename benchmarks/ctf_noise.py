"""Benchmark: how far the simulator figures of the CTF table (benchmarks/ctf.py) move with the detector's
noise draw alone, under one estimator (this tree's), for the simulator of this tree and of earlier commits.

    python benchmarks/ctf_noise.py [--commits HEAD f51e00e] [--draws own 11 12 13 14] [--work /tmp/ctf_noise]
                                   [--no-write] [--out JSON] [--rewrite JSON]

Why: the table's recorded images are one draw of the detector (Poisson counts and X-ray hits from the
simulation's generator). numpy's Poisson sampler draws a variable number of uniforms per pixel (rejection
sampling), so a change of the expected counts anywhere (fb79b82's projection sampling moved the objects by
~1 %) desynchronises the generator from that pixel on and the whole series gets a new draw of shot noise,
while the specimen, the geometry, the defocus, the gain and the ice texture (drawn before the frames or from
their own per-tilt generators) stay the same.

For each commit's simulator (a detached ``git worktree`` under ``--work``; this tree for HEAD) and each draw,
a subprocess runs this script's worker with that tree first on the path: ``small`` seed 1, the detector's
generator restarted from ``default_rng(draw)`` at the first frame (``own``: left as the simulation has it,
the images of benchmarks/ctf.py), the frames summed as benchmarks/ctf.py does (gain applied, aligned with
the true shifts) and kept as .npy with the truth, the movies deleted. Then this tree's ``estimate_tilt_series``
and ``fit_image`` (benchmarks/ctf.py's settings, 1 thread) on each; the median |error| per tilt class
against benchmarks/ctf.py's target; the range over draws. Prints JSON; rewrites the ctf_noise section of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

HERE = Path(__file__).parent
START, END = "<!-- ctf_noise:start -->", "<!-- ctf_noise:end -->"


def worker(out: Path, draw: str) -> None:
    """Simulate ``small`` seed 1 into ``out`` with the detector drawing from ``draw``; keep recorded.npy + truth.json.
    Uses only what the simulator has had since f51e00e (it runs under an earlier commit's tree)."""
    import numpy as np

    import tomoforge.simulate.run as run
    from tomoforge.simulate import load_simulation, simulate

    if draw != "own":
        state = np.random.default_rng(int(draw)).bit_generator.state
        record = run.record_frame
        restarted: list[bool] = []

        def record_frame(expected, gain, defects, per_frame, counts, rng, tilt, frame):  # noqa: ANN001, ANN202
            if not restarted:  # the first frame: the detector's draws from here on come from `draw`
                rng.bit_generator.state = state
                restarted.append(True)
            return record(expected, gain, defects, per_frame, counts, rng, tilt, frame)

        run.record_frame = record_frame
    cpu = time.process_time()
    simulate(out, preset="small", seed=1, progress=False)
    result = load_simulation(out)
    ts = result.tilt_series[0]
    truth = ts.truth
    np.save(out / "recorded.npy", summed_recorded(result).numpy())
    truth.setdefault("voltage_kV", truth.get("voltage_kv"))  # spelled voltage_kv before 6e81ecf
    truth["simulate_cpu_s"] = round(time.process_time() - cpu, 1)
    (out / "truth.json").write_text(json.dumps(truth))
    for movie in ts.movies:
        Path(movie).unlink()


def summed_recorded(result) -> torch.Tensor:  # noqa: ANN001 - a SimulationResult of any commit since f51e00e
    """The first tilt series' movies, gain applied, frames aligned with the true shifts and summed: (n, y, x)."""
    import torch

    from tomoforge.io.movies import read_gain, read_movie
    from tomoforge.methods.fourier import fourier_shift_2d

    truth = result.tilt_series[0].truth
    gain = torch.from_numpy(read_gain(result.gain))
    sums = []
    for movie, tilt in zip(result.tilt_series[0].movies, truth["tilts"]):
        shifts = torch.tensor(tilt["frame_shifts_A"])[:, [1, 0]] / truth["pixel_size_A"]
        sums.append(fourier_shift_2d(torch.from_numpy(read_movie(movie)) * gain, -shifts).sum(0))
    return torch.stack(sums)


def tree(commit: str, work: Path) -> Path:
    """The source tree of ``commit``: this one for HEAD, else a detached worktree under ``work``."""
    if commit == "HEAD":
        return HERE.parent
    path = work / f"tree_{commit}"
    if not path.is_dir():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), commit], cwd=HERE, check=True)
    return path


def series(commit: str, draw: str, work: Path) -> Path:
    """The folder of one simulated series (made once; kept as recorded.npy + truth.json)."""
    out = work / f"{commit}_{draw}"
    if not (out / "truth.json").is_file():
        from tomoforge.simulate.structures import default_data_root

        env = {**os.environ, "PYTHONPATH": str(tree(commit, work))}
        env.setdefault("TOMOFORGE_TEST_DATA", str(default_data_root()))
        subprocess.run([sys.executable, __file__, "--worker", str(out), draw], env=env, check=True)
    return out


def measure(folder: Path) -> dict:
    """This tree's estimator (series and each image alone) on one simulated series."""
    import numpy as np
    import torch

    sys.path.insert(0, str(HERE))
    import ctf

    torch.set_num_threads(1)
    truth = json.loads((folder / "truth.json").read_text())
    images = torch.from_numpy(np.load(folder / "recorded.npy"))
    row: dict = {"simulate_cpu_s": truth.get("simulate_cpu_s")}
    for name, fn in (("series", ctf.ours_series), ("alone", ctf.ours_single)):
        cpu = time.process_time()
        fits, _ = fn(images, truth)
        row[name] = {**ctf.summary(fits, truth), "cpu_s": round(time.process_time() - cpu, 1)}
    return row


def write(result: dict) -> None:
    sys.path.insert(0, str(HERE))
    from ctf_matrix import machine_line
    from results_md import replace_section

    classes = ["|tilt| ≤ 40°", "|tilt| ≥ 30°", "all"]
    lines = [
        "## CTF table's noise: one simulator, several detector draws (`python benchmarks/ctf_noise.py`)",
        "",
        machine_line(result["machine"], result["load_after"]) + "). benchmarks/ctf.py's recorded `small` "
        "seed-1 series (41 × 1024², 3 Å/px) made by the simulator of each commit with the detector's generator "
        "restarted from `default_rng(draw)` at the first frame (`own`: as the simulation draws it, the images of "
        "the CTF table): the same specimen, geometry, defocus, gain and ice texture, another draw of shot noise "
        "and X-ray hits. This tree's estimator on each (1 thread). Median |error| (Å) of the mean defocus "
        "against the slab mid-plane at the image centre, |tilt| ≤ 40° / ≥ 30° / all.",
        "",
        "| simulator | draw | series | each image alone | worst tilt (series) | series, mean error beyond ±30° "
        "| series against the plane z = 0 (the target before 2026-12-06) | its mean error beyond ±30° |",
        "|---|---|---|---|---:|---:|---|---:|",
    ]
    mean = "mean error, |tilt| ≥ 30° (Å)"
    for r in result["runs"]:
        s, a, z = r["series"], r["alone"], r["series"]["against the plane z = 0"]
        lines.append(
            f"| {r['commit']} | {r['draw']} | {' / '.join(f'{s[c]:.0f}' for c in classes)} | "
            f"{' / '.join(f'{a[c]:.0f}' for c in classes)} | {max(abs(e) for e in s['errors_A'])} | "
            f"{s[mean]:+.0f} | {' / '.join(f'{z[c]:.0f}' for c in classes)} | {z[mean]:+.0f} |"
        )
    lines.append("")
    for commit in dict.fromkeys(r["commit"] for r in result["runs"]):
        runs = [r for r in result["runs"] if r["commit"] == commit]
        spread = {
            name: ", ".join(
                f"{c} {min(r[name][c] for r in runs):.0f}–{max(r[name][c] for r in runs):.0f}" for c in classes
            )
            for name in ("series", "alone")
        }
        bias = [
            sum(get(r) for r in runs) / len(runs)
            for get in (lambda r: r["series"][mean], lambda r: r["series"]["against the plane z = 0"][mean])
        ]
        lines.append(
            f"{commit}: over {len(runs)} draws, series {spread['series']}; alone {spread['alone']} Å; the series' mean "
            f"error beyond ±30°, averaged over the draws, {bias[0]:+.0f} Å against the slab's mid-plane, "
            f"{bias[1]:+.0f} Å against the plane z = 0."
        )
    replace_section(START, END, lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", nargs=2, metavar=("OUT", "DRAW"), help=argparse.SUPPRESS)
    ap.add_argument("--commits", nargs="+", default=["HEAD", "f51e00e"], help="whose simulator (HEAD: this tree)")
    ap.add_argument("--draws", nargs="+", default=["own", "11", "12", "13", "14"], help="detector seeds, or 'own'")
    ap.add_argument("--work", type=Path, default=Path("/tmp/ctf_noise"), help="simulations and worktrees")
    ap.add_argument("--no-write", action="store_true", help="do not update benchmarks/RESULTS.md")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    ap.add_argument("--rewrite", type=Path, default=None, help="only rewrite the section from this JSON")
    args = ap.parse_args()
    if args.worker:
        worker(Path(args.worker[0]), args.worker[1])
        return
    if args.rewrite:
        write(json.loads(args.rewrite.read_text()))
        return
    from results_md import emit, machine_info

    result: dict = {"machine": machine_info(), "runs": []}
    for commit in args.commits:
        for draw in args.draws:
            label = result["machine"]["git"] + " (this tree)" if commit == "HEAD" else commit
            row = {"commit": label, "draw": draw, **measure(series(commit, draw, args.work))}
            print(json.dumps(row, ensure_ascii=False), file=sys.stderr, flush=True)
            result["runs"].append(row)
    emit(result, args.out, None if args.no_write else write)


if __name__ == "__main__":
    main()
