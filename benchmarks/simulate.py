"""Benchmark of the simulator presets: prints JSON timings and updates benchmarks/RESULTS.md.

python benchmarks/simulate.py [--presets tiny small tutorial virions] [--outdir /tmp/tomoforge-bench]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from results_md import machine_info, replace_section  # the benchmarks folder, run as a script

from tomoforge.simulate import simulate

START, END = "<!-- simulate:start -->", "<!-- simulate:end -->"


def folder_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", nargs="+", default=["tiny", "small", "tutorial", "virions"])
    ap.add_argument("--outdir", default="/tmp/tomoforge-bench")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows = []
    for preset in args.presets:
        out = Path(args.outdir) / preset
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        res = simulate(out, preset=preset, seed=args.seed, progress=False)
        wall = time.perf_counter() - t0
        ts = res.tilt_series
        rows.append(
            {
                "preset": preset,
                "wall_s": round(wall, 1),
                "tilt_series": len(ts),
                "tilts": sum(len(t.movies) for t in ts),
                "image_size": list(res.config.detector.image_size),
                "particles": sum(len(t.truth["particles"]) for t in ts),
                "output_MB": round(folder_size_mb(out)),
            }
        )
    machine = machine_info()
    print(json.dumps({"machine": machine, "results": rows}, indent=1))
    table = [
        "| preset | wall (s) | tilt series | tilts | image (y, x) | particles | output (MB) |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    table += [
        f"| {r['preset']} | {r['wall_s']} | {r['tilt_series']} | {r['tilts']} | {r['image_size']} | "
        f"{r['particles']} | {r['output_MB']} |"
        for r in rows
    ]
    replace_section(
        START,
        END,
        [
            "## Simulator (`python benchmarks/simulate.py`)",
            "",
            f"{machine['date']}, {machine['nproc']} cores ({machine['cpu']}), commit "
            f"{machine['git']}, load {machine['load']}. Target: `small` under 180 s, every preset under 300 s.",
            "",
            *table,
        ],
    )


if __name__ == "__main__":
    main()
