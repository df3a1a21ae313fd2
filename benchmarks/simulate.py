"""Benchmark of the simulator presets: prints JSON timings and updates benchmarks/RESULTS.md.

    python benchmarks/simulate.py [--presets tiny small tutorial] [--outdir /tmp/tomoforge-bench]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import time
from pathlib import Path

from tomoforge.simulate import simulate

RESULTS = Path(__file__).with_name("RESULTS.md")
START, END = "<!-- simulate:start -->", "<!-- simulate:end -->"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def folder_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", nargs="+", default=["tiny", "small", "tutorial"])
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
        rows.append({"preset": preset, "wall_s": round(wall, 1), "tilt_series": len(ts),
                     "tilts": sum(len(t.movies) for t in ts),
                     "image_size": list(res.config.detector.image_size),
                     "particles": sum(len(t.truth["particles"]) for t in ts), "output_MB": round(folder_size_mb(out))})
    machine = {"nproc": os.cpu_count(), "cpu": cpu_model(), "date": datetime.date.today().isoformat(),
               "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                     cwd=Path(__file__).parent).stdout.strip()}
    print(json.dumps({"machine": machine, "results": rows}, indent=1))
    table = ["| preset | wall (s) | tilt series | tilts | image (y, x) | particles | output (MB) |",
             "|---|---:|---:|---:|---|---:|---:|"]
    table += [f"| {r['preset']} | {r['wall_s']} | {r['tilt_series']} | {r['tilts']} | {r['image_size']} | "
              f"{r['particles']} | {r['output_MB']} |" for r in rows]
    section = "\n".join([START, "## Simulator (`python benchmarks/simulate.py`)", "",
                         f"{machine['date']}, {machine['nproc']} cores ({machine['cpu']}), commit {machine['git']}. "
                         "Target: `small` under 180 s.", "", *table, END])
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n"
    if START in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
