"""Benchmark: the coordinate tools on a million picks over 10 tomograms, through the engine's bulk path.

    python benchmarks/coordinates.py [--per-tomogram 50000] [--json FILE] [--no-write]

Two pickers each find the same 45,000 particles per tomogram (5 Å noise, 4,000 × 4,000 × 1,000 Å tomograms,
particles ≥ 40 Å apart) plus 5,000 false positives of their own: 500,000 picks each, 1,000,000 together.
Timed (wall, serial executor, in this process):

- ``import_1M_s``: import-coordinates of both pickers' picks as one RELION 5 star (a million rows, written with
  ``append_columns``); ``star_write_1M_s``: writing that star (``io.star.write_particles_star``);
- ``arrays_1M_s``: ``ItemSet.arrays`` of the million (position, score, rotation, tomogram, …);
- ``remove_duplicates_run_s`` (the whole run: read, 10 tasks, write) and ``remove_duplicates_method_s``
  (``methods.picking.duplicates.remove_duplicates`` on the arrays, per tomogram) at 30 Å;
- ``consensus_run_s`` and ``consensus_method_s``: picking-consensus of the two 500,000-pick sets at 30 Å, keep=all,
  orientations averaged (C1);
- ``export_star_1M_s``: export-coordinates of the million as particles.star + tomograms.star;
- ``particles_write_1M_s``: the same million as a Particle set (17 typed columns: half set, shifts, tilt series,
  files …) written by ``append_columns`` in a run (a stand-in protocol, as extraction would make them), and
  ``remove_duplicates_particles_run_s``: remove-duplicates of it, every column carried to the Particles kept.

Prints one JSON object (also written to ``--json``) and rewrites the coordinates section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # this checkout's tomoforge, not an installed one; results_md
from results_md import machine_info, replace_section

from tomoforge.engine import ExecutorConfig, Project, Protocol, ProtocolParams, Task, execute_run, param, registry
from tomoforge.io.mrc import write_mrc
from tomoforge.io.star import ParticleTable, write_particles_star
from tomoforge.methods.picking.consensus import mean_rotations, merge_picks
from tomoforge.methods.picking.duplicates import remove_duplicates
from tomoforge.methods.rotations import random_rotations
from tomoforge.model import Particle

START, END = "<!-- coordinates:start -->", "<!-- coordinates:end -->"
SERIAL = ExecutorConfig(kind="serial")
N_TOMOGRAMS = 10
BOX_A = np.array([4000.0, 4000.0, 1000.0])
SIZE_XYZ = (400, 400, 100)  # 10 Å voxels


def pickers(per_tomogram: int, rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    """Two pickers' picks (tomogram, position, rotation, score): 90 % shared true particles, 10 % their own."""
    n_true = int(per_tomogram * 0.9)
    names, truth, rotations = [], [], []
    for t in range(N_TOMOGRAMS):
        grid = np.stack(np.meshgrid(*[np.arange(-b / 2 + 30, b / 2 - 30, 60.0) for b in BOX_A], indexing="ij"), -1)
        cells = grid.reshape(-1, 3)
        chosen = cells[rng.choice(len(cells), n_true, replace=False)]
        truth.append(chosen + rng.uniform(-10, 10, chosen.shape))  # ≥ 40 Å apart
        names.append(np.full(n_true, f"TS_{t + 1:02d}"))
        rotations.append(random_rotations(n_true, rng))
    truth_xyz, truth_names, truth_rot = np.concatenate(truth), np.concatenate(names), np.concatenate(rotations)
    out = {}
    for picker in ("a", "b"):
        n_false = per_tomogram - n_true
        false_names = np.repeat([f"TS_{t + 1:02d}" for t in range(N_TOMOGRAMS)], n_false)
        xyz = np.concatenate(
            [truth_xyz + rng.normal(0, 5.0, truth_xyz.shape), rng.uniform(-BOX_A / 2, BOX_A / 2, (len(false_names), 3))]
        )
        out[picker] = {
            "tomogram": np.concatenate([truth_names, false_names]),
            "position": xyz,
            "rotation": np.concatenate([truth_rot, random_rotations(len(false_names), rng)]),
            "score": rng.random(len(xyz)),
        }
    return out


class ParticlesParams(ProtocolParams):
    arrays: str = param(..., help="an .npz of Particle columns (names prefixed c_)")


@dataclass(frozen=True, kw_only=True)
class ParticlesJob:
    arrays: str


def particles_task(job: ParticlesJob) -> dict[str, np.ndarray]:
    with np.load(job.arrays, allow_pickle=False) as data:
        return {name[2:]: data[name] for name in data.files}


class BenchParticles(Protocol):
    """Stand-in for extraction: a Particle set from arrays, written in one ``append_columns``."""

    name = "bench-particles"
    Params = ParticlesParams
    outputs = {"particles": Particle}

    def tasks(self):  # type: ignore[no-untyped-def]
        yield Task(particles_task, ParticlesJob(arrays=self.params.arrays), key="particles")

    def collect(self, task, result):  # type: ignore[no-untyped-def]
        self.output("particles").append_columns(result)


def particle_columns(arrays: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The coordinates' columns plus a Particle's (half set, shifts, tilt series, data file and index, weight)."""
    n = len(arrays["x_A"])
    return {
        **arrays,
        "number": np.arange(n),
        "half_set": 1 + np.arange(n) % 2,
        "shift_x_A": rng.normal(0, 2, n),
        "shift_y_A": rng.normal(0, 2, n),
        "shift_z_A": rng.normal(0, 2, n),
        "tilt_series": arrays["tomogram"],
        "file": np.char.add(arrays["tomogram"], "_particles.mrcs"),
        "index": np.arange(n) % 50_000,
        "weight_file": np.char.add(arrays["tomogram"], "_weight.mrc"),
    }


def write_star(path: Path, picks: dict[str, np.ndarray]) -> float:
    extra = pd.DataFrame({"rlnAutopickFigureOfMerit": picks["score"]})
    table = ParticleTable(picks["tomogram"].tolist(), picks["position"], picks["rotation"], extra=extra)
    start = time.perf_counter()
    write_particles_star(table, path, overwrite=True)
    return time.perf_counter() - start


def timed_run(project: Project, protocol: str, params: dict, inputs: dict) -> tuple[int, float]:
    run_id = project.new_run(protocol, params, inputs, executor=SERIAL)
    start = time.perf_counter()
    state = execute_run(project, run_id)
    seconds = time.perf_counter() - start
    if state != "finished":
        raise RuntimeError(f"{protocol}: {project.run(run_id)['error']}")
    return run_id, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-tomogram", type=int, default=50_000, help="picks per tomogram and picker")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    picks = pickers(args.per_tomogram, rng)
    both = {k: np.concatenate([picks["a"][k], picks["b"][k]]) for k in picks["a"]}
    n = len(both["score"])
    result: dict = {"machine": machine_info(), "picks": n, "tomograms": N_TOMOGRAMS}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        project = Project.create(root / "project")
        tomos = root / "tomos"
        tomos.mkdir()
        for t in range(N_TOMOGRAMS):
            write_mrc(tomos / f"TS_{t + 1:02d}.mrc", np.zeros(SIZE_XYZ[::-1], np.int8), 10.0)
        tomograms, _ = timed_run(project, "import-tomograms", {"files_path": str(tomos)}, {})
        folders = {}
        for name, data in (("both", both), ("a", picks["a"]), ("b", picks["b"])):
            folders[name] = root / name
            folders[name].mkdir()
            seconds = write_star(folders[name] / "picks.star", data)
            if name == "both":
                result["star_write_1M_s"] = round(seconds, 2)
        runs = {}
        for name, folder in folders.items():
            runs[name], seconds = timed_run(
                project, "import-coordinates", {"files_path": str(folder)}, {"tomograms": f"{tomograms}.tomograms"}
            )
            if name == "both":
                result["import_1M_s"] = round(seconds, 2)
        start = time.perf_counter()
        arrays = project.output_set(runs["both"], "coordinates").arrays(
            "number", "tomogram", "x_A", "y_A", "z_A", "group", "score", "has_orientation", "rotation"
        )
        result["arrays_1M_s"] = round(time.perf_counter() - start, 2)
        xyz = np.stack([arrays["x_A"], arrays["y_A"], arrays["z_A"]], 1)
        start = time.perf_counter()
        keep = remove_duplicates(xyz, 30.0, scores=arrays["score"], groups=arrays["tomogram"])
        result["remove_duplicates_method_s"] = round(time.perf_counter() - start, 2)
        dup, seconds = timed_run(
            project, "remove-duplicates", {"distance_A": 30.0}, {"coordinates": f"{runs['both']}.coordinates"}
        )
        result["remove_duplicates_run_s"] = round(seconds, 2)
        result["remove_duplicates_kept"] = len(project.output_set(dup, "coordinates"))
        assert result["remove_duplicates_kept"] == int(keep.sum())
        start = time.perf_counter()
        for t in range(N_TOMOGRAMS):
            name = f"TS_{t + 1:02d}"
            a, b = (picks[p]["tomogram"] == name for p in ("a", "b"))
            merged = merge_picks([picks["a"]["position"][a], picks["b"]["position"][b]], 30.0)
            full = merged.members[merged.votes == 2]
            mean_rotations(
                np.stack([picks["a"]["rotation"][a][full[:, 0]], picks["b"]["rotation"][b][full[:, 1]]], 1),
                np.ones(full.shape, bool),
            )
        result["consensus_method_s"] = round(time.perf_counter() - start, 2)
        inputs = {"coordinates": f"{runs['a']}.coordinates", "other": f"{runs['b']}.coordinates"}
        cons, seconds = timed_run(project, "picking-consensus", {"radius_A": 30.0, "keep": "all"}, inputs)
        result["consensus_run_s"] = round(seconds, 2)
        result["consensus_kept"] = len(project.output_set(cons, "coordinates"))
        _, seconds = timed_run(
            project,
            "export-coordinates",
            {"format": "relion"},
            {"coordinates": f"{runs['both']}.coordinates", "tomograms": f"{tomograms}.tomograms"},
        )
        result["export_star_1M_s"] = round(seconds, 2)
        registry.protocols()
        registry._cache = {**(registry._cache or {}), BenchParticles.name: BenchParticles}
        npz = root / "particles.npz"
        np.savez(npz, **{f"c_{k}": v for k, v in particle_columns(arrays, rng).items()})
        made, seconds = timed_run(project, BenchParticles.name, {"arrays": str(npz)}, {})
        result["particles_write_1M_s"] = round(seconds, 2)
        dup, seconds = timed_run(
            project, "remove-duplicates", {"distance_A": 30.0}, {"coordinates": f"{made}.particles"}
        )
        result["remove_duplicates_particles_run_s"] = round(seconds, 2)
        kept = project.output_set(dup, "coordinates")
        assert kept.item_class is Particle and len(kept) == result["remove_duplicates_kept"]
        project.close()
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    if not args.no_write:
        m = result["machine"]
        replace_section(
            START,
            END,
            [
                "## Coordinate tools on a million picks (issue 18)",
                "",
                f"`python benchmarks/coordinates.py` — {m['nproc']} cores ({m['cpu']}), commit {m['git']}, "
                f"{m['date']}, load {m['load']}. {n:,} picks over {N_TOMOGRAMS} tomograms (two pickers of "
                f"{n // 2:,}), serial executor, wall seconds (the machine is shared: a load above its core count "
                "slows every figure by about load / cores; the engine section's 1 M `append_columns` took 8.3 s "
                "on it idle):",
                "",
                "| step | s |",
                "|---|---|",
                f"| write the 1 M-row particles STAR (`write_particles_star`) | {result['star_write_1M_s']} |",
                f"| import-coordinates of 1 M (read STAR, `append_columns`) | {result['import_1M_s']} |",
                f"| `ItemSet.arrays` of 1 M (9 columns incl. rotations) | {result['arrays_1M_s']} |",
                f"| remove-duplicates 30 Å, method on arrays | {result['remove_duplicates_method_s']} |",
                f"| remove-duplicates 30 Å, whole run ({result['remove_duplicates_kept']:,} kept) "
                f"| {result['remove_duplicates_run_s']} |",
                f"| picking-consensus 2 × 500 k, 30 Å, keep=all, method | {result['consensus_method_s']} |",
                f"| picking-consensus, whole run ({result['consensus_kept']:,} kept) | {result['consensus_run_s']} |",
                f"| export-coordinates of 1 M to RELION 5 STAR, whole run | {result['export_star_1M_s']} |",
                f"| the 1 M as Particles (17 columns), `append_columns` in a run | {result['particles_write_1M_s']} |",
                f"| remove-duplicates 30 Å of the Particles, whole run (every column kept) "
                f"| {result['remove_duplicates_particles_run_s']} |",
            ],
        )


if __name__ == "__main__":
    main()
