"""Benchmark: ``tomoforge demo`` on the `small` preset, end to end (simulation, the 12 runs, the accuracy report).

    python benchmarks/demo.py [--seed 0] [--no-write]

Runs the README's main command in a fresh temporary folder as a user would, times it (wall and CPU of the
child process), reads the per-run durations from the project and the accuracy figures from accuracy.json,
prints one JSON object and rewrites the demo section of benchmarks/RESULTS.md. Issue floor: under 10 minutes
on 2 cores, and the SIRT from the recovered alignment agreeing with the one from the true alignment (r ≥ 0.9).
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from results_md import machine_info, replace_section  # noqa: E402 - the benchmarks folder, run as a script

START, END = "<!-- demo:start -->", "<!-- demo:end -->"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    machine = machine_info()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo"
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "tomoforge.cli.main", "demo", str(out), "--seed", str(args.seed)],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(
                f"tomoforge demo failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        steps = {
            m.group(2): float(m.group(3))
            for m in re.finditer(r"run (\d+) (\S+) \.\.\. finished in ([\d.]+) s", proc.stdout)
        }
        simulated = float(re.search(r"simulated in ([\d.]+) s", proc.stdout).group(1))
        accuracy = json.loads((out / "accuracy.json").read_text())
    result = {
        "machine": machine,
        "wall_s": round(wall, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "simulation_s": simulated,
        "runs_s": steps,
        "accuracy": {f"{a['step']}: {a['measure']}": a["text"] for a in accuracy},
    }
    print(json.dumps(result, indent=2))
    if args.no_write:
        return
    lines = [
        f"## End-to-end demo (`tomoforge demo`, small preset, seed {args.seed})",
        "",
        f"{machine['date']}, {machine['nproc']} cores ({machine['cpu']}), torch {machine['torch']}, "
        f"commit {machine['git']}, load {machine['load']} at the start. `python benchmarks/demo.py`",
        "",
        f"Whole command: **{wall:.0f} s wall** ({result['cpu_s']:.0f} s CPU), of which the simulation "
        f"{simulated:.0f} s; issue floor 600 s on 2 cores.",
        "",
        "| run | s |",
        "|---|---|",
        *[f"| {name} | {s:.1f} |" for name, s in steps.items()],
        "",
        "| step: against the truth | value |",
        "|---|---|",
        *[f"| {key} | {text} |" for key, text in result["accuracy"].items()],
    ]
    replace_section(START, END, lines)


if __name__ == "__main__":
    main()
