"""Benchmark of the simulator presets: wall time per preset, JSON in benchmarks/simulate.json, table in RESULTS.md.

python benchmarks/simulate.py [--presets tiny small tutorial virions cell] [--outdir /tmp/tomoforge-bench]
                              [--set acquisition.tilt_series_count=1 ...]  (a reduced run: the row says so)
                              [--threads 1]

Presets not run keep their earlier row (each row says its date, commit and the load average around it).
Target (issue 17): every preset under 300 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from results_md import machine_info, replace_section  # the benchmarks folder, run as a script

from tomoforge.simulate import simulate
from tomoforge.simulate.config import PRESET_INFO, parse_overrides

START, END = "<!-- simulate:start -->", "<!-- simulate:end -->"
JSON_PATH = Path(__file__).with_name("simulate.json")


def folder_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def run_preset(preset: str, outdir: Path, seed: int | None, overrides: dict) -> dict:
    out = outdir / preset
    shutil.rmtree(out, ignore_errors=True)
    seed = PRESET_INFO[preset][0] if seed is None else seed
    load_before = round(os.getloadavg()[0], 2)
    t0, c0 = time.perf_counter(), time.process_time()
    res = simulate(out, preset=preset, seed=seed, overrides=overrides, progress=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    ts = res.tilt_series
    row = {
        "preset": preset,
        "seed": seed,
        "overrides": overrides,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "tilt_series": len(ts),
        "tilts": sum(len(t.movies) for t in ts),
        "image_size": list(res.config.detector.image_size),
        "particles": sum(len(t.truth["particles"]) for t in ts),
        "output_MB": round(folder_size_mb(out)),
        "load_before": load_before,
        "load_after": round(os.getloadavg()[0], 2),
    }
    shutil.rmtree(out, ignore_errors=True)
    return row


def describe(overrides: dict) -> str:
    return ", ".join(f"{k.split('.')[-1]}={v}" for k, v in overrides.items())


def read_rows() -> dict[str, dict]:
    """The rows of simulate.json by preset (none when it does not exist)."""
    return {r["preset"]: r for r in json.loads(JSON_PATH.read_text())["results"]} if JSON_PATH.exists() else {}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", nargs="*", default=list(PRESET_INFO), help="none: only rewrite the table")
    ap.add_argument("--outdir", default="/tmp/tomoforge-bench")
    ap.add_argument("--seed", type=int, default=None, help="default: each preset's own seed")
    ap.add_argument("--set", dest="set_", action="append", default=[], help="key=value override (a reduced run)")
    ap.add_argument(
        "--threads", type=int, default=None, help="torch threads (1 on a loaded machine: CPU time without spinning)"
    )
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    machine = machine_info()
    for preset in args.presets:
        row = run_preset(preset, Path(args.outdir), args.seed, parse_overrides(args.set_))
        row.update({k: machine[k] for k in ("date", "git", "nproc", "cpu", "torch_threads")})
        print(json.dumps(row), flush=True)
        rows = read_rows()  # read again: another run may have added its rows meanwhile
        rows[preset] = row
        JSON_PATH.write_text(json.dumps({"results": list(rows.values())}, indent=1) + "\n")
    rows = read_rows()
    table = [
        "| preset | wall (s) | CPU (s) | torch threads | tilt series | tilts | image (y, x) | particles | output (MB) "
        "| date, commit | load |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---|---|",
    ]
    table += [
        f"| {r['preset']}{' with ' + describe(r['overrides']) if r.get('overrides') else ''} | {r['wall_s']} | {r.get('cpu_s', '?')} | {r.get('torch_threads', '?')} | {r['tilt_series']} | {r['tilts']} | {r['image_size']} | "
        f"{r['particles']} | {r['output_MB']} | {r.get('date', '?')}, {r.get('git', '?')} | "
        f"{r.get('load_before', '?')} → {r.get('load_after', '?')} |"
        for r in rows.values()
    ]
    replace_section(
        START,
        END,
        [
            "## Simulator (`python benchmarks/simulate.py`)",
            "",
            f"{machine['nproc']} cores ({machine['cpu']}); load: the "
            "1-minute load average before → after each preset (the machine is shared: above 2 the timings are "
            "inflated); CPU: the process's CPU time (all threads), which a quiet 2-core machine needs at most "
            "as wall time (under heavy load it grows too: waiting threads spin; with 1 torch thread it does not, and a "
            "quiet 2-core machine needs at most that CPU time as wall time). Target: every preset under 300 s on 2 cores. JSON: `benchmarks/simulate.json`.",
            "",
            *table,
        ],
    )


if __name__ == "__main__":
    main()
