"""A small simulated specimen of one asymmetric-enough species (C6 hexamer rings), its truth tomogram and
true particles, and helpers to put coordinates into a project as a finished run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tomoforge.engine import ExecutorConfig, ItemSet, Project, execute_run
from tomoforge.io.mrc import read_mrc, write_mrc
from tomoforge.model import Coordinate3D
from tomoforge.simulate import load_simulation, simulate

SERIAL = ExecutorConfig(kind="serial")
SMALL_VIRIONS = {
    "acquisition.tilt_series_count": 1,
    "acquisition.tilt_min_deg": -60.0,
    "acquisition.tilt_max_deg": 60.0,
    "acquisition.tilt_step_deg": 10.0,
    "acquisition.frames_per_tilt": 1,
    # past the CTF's first zero below bin 2's Nyquist (21.6 Å): at 300 kV the first zero lies at ~22 Å for
    # 2.5 µm and ~28 Å for 4 µm, so what CTF premultiplication gains (test_virions) needs the upper range
    "acquisition.defocus_um": [3.5, 4.0],
    "detector.image_size": [256, 256],
    "specimen.ice_thickness_A": 800.0,
    "specimen.virions.count": 1,
    "specimen.virions.radius_A": [300.0, 320.0],
    "specimen.virions.aspect": [1.0, 1.05],
    "specimen.fiducials.count_per_surface": 0,
    "specimen.background_count": 0,
    "output.tomogram_binning": 4,
}

HEXAMERS = {
    "specimen.particles": [
        {
            "name": "hexamer",
            "source": "models/6z6u.pdb",
            "chain": "A",
            "symmetry": "C6",
            "assembly_radius_A": 28.0,
            "count": 10,
            "count_on_membranes": 0,
        }
    ],
    "specimen.vesicles.count": 0,
    "specimen.fiducials.count_per_surface": 0,
    "specimen.ice_thickness_A": 400.0,
    "output.tomogram_binning": 1,
    "output.write_ctf_free_stack": True,
}


def run(project: Project, name: str, params: dict, inputs: dict) -> int:
    run_id = project.new_run(name, params, inputs, executor=SERIAL)
    state = execute_run(project, run_id)
    assert state == "finished", project.run(run_id)["error"]
    return run_id


def finished_run(project: Project, protocol: str, params: dict, inputs: dict, output: str, cls, items=()) -> tuple:
    """A run of ``protocol`` marked finished whose output set ``output`` holds ``items`` (more may be added to
    the returned set before it is closed by the caller): (run id, set)."""
    run_id = project.new_run(protocol, params, inputs)
    out = ItemSet.create(project.conn, run_id, output, cls)
    for item in items:
        out.append(item)
    project.set_state(run_id, "finished")
    return run_id, out


def coordinate_run(project: Project, tomograms_run: int, tomogram: str, positions, rotations) -> int:
    """A finished import-coordinates run whose output holds these positions (Å) and rotations (n, 3, 3)."""
    run_id, out = finished_run(
        project,
        "import-coordinates",
        {"files_path": "."},
        {"tomograms": f"{tomograms_run}.tomograms"},
        "coordinates",
        Coordinate3D,
    )
    n = len(positions)
    out.append_columns(
        {
            "number": np.arange(n),
            "tomogram": np.array([tomogram] * n),
            "x_A": positions[:, 0],
            "y_A": positions[:, 1],
            "z_A": positions[:, 2],
            "rotation": np.asarray(rotations),
            "has_orientation": np.ones(n, bool),
        }
    )
    out.close()
    return run_id


@pytest.fixture(scope="module")
def hexamer_sim(tmp_path_factory, test_data):
    """The `tiny` preset with 10 C6 hexamers free in 400 Å of ice, no gold, truth tomogram at 6 Å and the
    noise-free stack formed with a perfect transfer (seed 3, ~2 s)."""
    out = tmp_path_factory.mktemp("hexamers")
    return simulate(out, preset="tiny", seed=3, overrides={"data_root": str(test_data), **HEXAMERS}, progress=False)


@pytest.fixture(scope="module")
def sta_project(hexamer_sim, tmp_path_factory):
    """(project, import-tomograms run of the truth tomogram named TS_01, truth dict, reference map path)."""
    ts = hexamer_sim.tilt_series[0]
    root = tmp_path_factory.mktemp("sta")
    folder = root / "tomograms"
    folder.mkdir()
    shutil.copy(ts.tomogram, folder / f"{ts.name}.mrc")
    project = Project.create(root / "project")
    tomos = run(project, "import-tomograms", {"files_path": str(folder)}, {})
    reference = Path(hexamer_sim.outdir) / ts.truth["species"][0]["reference_map"]
    yield project, tomos, ts.truth, reference
    project.close()


def noisy_stacks(sim, folder: Path, seed: int = 0) -> dict[str, str]:
    """Per tilt series: its noise-free stack with Poisson shot noise, written to ``folder`` (name → path)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for ts in sim.tilt_series:
        expected = read_mrc(ts.noise_free_stack)
        counts = rng.poisson(np.clip(expected, 0, None)).astype(np.float32)
        out[ts.name] = str(write_mrc(folder / f"{ts.name}.mrc", counts, ts.truth["pixel_size_A"], overwrite=True))
    return out


@pytest.fixture(scope="session")
def virions_sim(tmp_path_factory, test_data):
    """The `virions` preset made small: one virion's lattice of C6 hexamers, 13 tilts of 256² at 5.4 Å."""
    out = tmp_path_factory.mktemp("virions")
    reuse = os.environ.get("TOMOFORGE_VIRIONS_SIMULATION")  # a folder made by this fixture, while developing
    if reuse:
        sim = load_simulation(reuse)
    else:
        overrides = {"data_root": str(test_data), **SMALL_VIRIONS}
        sim = simulate(out, preset="virions", seed=2, overrides=overrides, progress=False)
    return sim, noisy_stacks(sim, out / "noisy")
