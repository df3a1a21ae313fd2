"""The simulator's full ``virions`` preset (3 tilt series × 41 tilts of 928 × 960 at 5.4 Å, HIV-like virions
with a lattice of C6 hexamers) with its TRUE coordinates, orientations, projection model and CTF through
extract-pseudo-subtomograms at bin 2 and reconstruct-particle with C6 (issue 19): half-map FSC at 0.143 and FSC
against the reference map (inside a soft mask around it) at 0.5, with and without CTF premultiplication, and the
seconds of each step. The chain is ``tests/protocols/sta/test_virions.py``'s ``run_chain`` (the CI test is the
same on a small variant); the images are the noise-free tilt series with Poisson shot noise.

Run: ``nice .venv-wt/bin/python benchmarks/sta_virions.py [--sim DIR] [--partial] [--box 32]``; ``--sim`` reuses
a folder made by ``tomoforge simulate DIR --preset virions --seed 1`` (else it is simulated, timed, into a
temporary folder); ``--partial`` takes the tilt series whose truth is written while that simulation still runs.
JSON to benchmarks/sta_virions.json, a section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results_md import machine_info, replace_section  # noqa: E402
from tests.protocols.sta.test_virions import noisy_stacks, run_chain  # noqa: E402
from tomoforge.engine import Project  # noqa: E402
from tomoforge.simulate import load_simulation, simulate  # noqa: E402
from tomoforge.simulate.config import SimulationConfig  # noqa: E402
from tomoforge.simulate.run import SimulatedTiltSeries, SimulationResult  # noqa: E402
from tomoforge.simulate.truth import read_truth  # noqa: E402

SEED = 1


def partial_simulation(outdir: Path) -> SimulationResult:
    """The tilt series of a simulation folder whose truth is written (the simulation may still run)."""
    series = []
    cfg = None
    for path in sorted(outdir.glob("truth/*/truth.json")):
        truth = read_truth(path)
        cfg = SimulationConfig.model_validate(truth["config"])
        stack = outdir / truth["noise_free_tilt_series"]
        tomogram = outdir / truth["tomogram"]["path"]
        movies = [outdir / m for m in truth["movies"]]
        series.append(
            SimulatedTiltSeries(
                truth["tilt_series"],
                outdir / truth["mdoc"],
                movies,
                path,
                path.with_name("tilts.star"),
                stack,
                tomogram,
                truth,
            )
        )
    if cfg is None:
        raise SystemExit(f"{outdir}: no truth/*/truth.json written yet")
    refs = {sp.name: outdir / "references" / f"{sp.name}_reference.mrc" for sp in cfg.specimen.particles}
    return SimulationResult(outdir, cfg, SEED, outdir / "gain.mrc", refs, tilt_series=series)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sim", type=Path, help="a finished (or, with --partial, running) virions simulation")
    parser.add_argument("--partial", action="store_true", help="only the tilt series already written")
    parser.add_argument("--box", type=int, default=32, help="box at bin 2 (10.8 Å pixels)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("sta_virions.json"))
    parser.add_argument("--no-results", action="store_true", help="do not touch RESULTS.md")
    parser.add_argument("--chains", default="ctf,no_ctf", help="which chains to run (ctf, no_ctf), in order")
    parser.add_argument("--section", default="", help="a second RESULTS.md section of this name (e.g. 3ts)")
    args = parser.parse_args()
    result: dict = {"machine": machine_info(), "box": args.box, "binning": 2, "seed": SEED}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if args.sim is None:
            sim = simulate(Path(tmp) / "sim", preset="virions", seed=SEED, progress=False)
            result["simulate_s"] = time.perf_counter() - t0
        else:
            sim = partial_simulation(args.sim) if args.partial else load_simulation(args.sim)
            result["simulate_s"] = sim.seconds or None
        result["tilt_series"] = [ts.name for ts in sim.tilt_series]
        result["tilts"] = [len(ts.truth["tilts"]) for ts in sim.tilt_series]
        t1 = time.perf_counter()
        stacks = noisy_stacks(sim, Path(tmp) / "noisy")
        result["shot_noise_s"] = time.perf_counter() - t1
        project = Project.create(Path(tmp) / "project")
        for label in args.chains.split(","):
            ctf = {"ctf": True, "no_ctf": False}[label]
            chain = run_chain(project, sim, stacks, box=args.box, ctf=ctf)
            result[label] = {
                **chain.summary(),
                "seconds": chain.seconds,
                "half_fsc": [round(float(c), 3) for c in chain.half_fsc],
                "reference_fsc": [round(float(c), 3) for c in chain.reference_fsc],
            }
            print(label, json.dumps(result[label]), flush=True)
            result["load_end"] = round(os.getloadavg()[0], 2)
            args.out.write_text(json.dumps(result, indent=1))  # after each chain: a partial run keeps its figures
            if not args.no_results:
                write_section(result, args.section)
        project.close()


def write_section(r: dict, section: str = "") -> None:
    m = r["machine"]
    rows = []
    for label, name in (("ctf", "CTF-premultiplied, dose-weighted"), ("no_ctf", "no CTF, no dose weight")):
        if label not in r:
            rows.append(f"| {name} | not run (stopped before) | | | | | |")
            continue
        c = r[label]
        rows.append(
            f"| {name} | {c['particles']} | {c['views']} | {c['half_fsc_0143_fraction_nyquist']:.2f} "
            f"({c['half_fsc_0143_A']:.1f} Å) | {c['reference_fsc_05_fraction_nyquist']:.2f} "
            f"({c['reference_fsc_05_A']:.1f} Å) | {c['seconds']['extract']:.1f} | {c['seconds']['reconstruct']:.1f} |"
        )
    sim = "reused" if r["simulate_s"] is None else f"{r['simulate_s']:.0f} s"
    lines = [
        "## STA on the `virions` preset with the true particles (issue 19), `python benchmarks/sta_virions.py`",
        "",
        f"{m['date']}, commit {m['git']}, {m['nproc']} cores ({m['cpu']}), torch {m['torch']}, load {m['load']} "
        f"(start) / {r['load_end']} (end); seed {r['seed']}; tilt series {', '.join(r['tilt_series'])} "
        f"({' + '.join(map(str, r['tilts']))} tilts); bin 2 (10.8 Å, Nyquist 21.6 Å), box {r['box']}, C6; "
        f"simulation {sim}, shot noise {r['shot_noise_s']:.1f} s. FSC crossings as fractions of Nyquist "
        "(1.00: none up to Nyquist); against the reference inside a soft mask around it.",
        "",
        "| extraction | particles | views | half maps FSC 0.143 | vs reference FSC 0.5 | extract (s) | reconstruct (s) |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    n = len(r["ctf"]["reference_fsc"]) if "ctf" in r else 0
    top = [i for i in range(n) if i / (n - 1) > 0.8]  # shells above 0.8 of Nyquist (shell n - 1 at Nyquist)
    for label in ("ctf", "no_ctf"):
        if label in r and top:
            values = ", ".join(f"{r[label]['reference_fsc'][i]:.3f}" for i in top)
            lines += ["", f"FSC against the reference above 0.8 Nyquist, {label}: {values}."]
    if len(r["tilt_series"]) < 3:
        lines += ["", "Fewer tilt series than the preset's 3: the simulation was not finished (`--partial`)."]
    name = f"sta_virions:{section}" if section else "sta_virions"
    replace_section(f"<!-- {name}:start -->", f"<!-- {name}:end -->", lines)


if __name__ == "__main__":
    main()
