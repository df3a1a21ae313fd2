"""template-matching end to end on the simulator's `tiny` preset: its tomogram (the specimen rendered at 12 Å,
noise added) and its apoferritin reference (30³ at 6 Å, resampled by the protocol to 15³) -> the three
apoferritins found and refined within a fifth of a voxel, orientations within a third of the step modulo O (the
truth's matching helpers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.protocols.picking.test_template_matching import MakeInputs, run
from tomoforge.engine import Project, registry
from tomoforge.io.mrc import read_mrc, write_mrc
from tomoforge.simulate.accuracy import match_picks, truth_particles
from tomoforge.simulate.truth import read_truth

STEP = 12.0


pytestmark = pytest.mark.slow  # simulates the preset (most of its minute on an idle machine)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, test_data: Path) -> Iterator[tuple[Project, int, dict]]:
    from tomoforge.simulate import simulate

    root = tmp_path_factory.mktemp("tm_tiny")
    simulate(root / "sim", preset="tiny", seed=7, overrides={"data_root": str(test_data)}, progress=False)
    truth = read_truth(root / "sim" / "truth" / "TS_01" / "truth.json")
    clean = read_mrc(root / "sim" / truth["tomogram"]["path"])
    noisy = clean + np.random.default_rng(0).normal(scale=clean.std(), size=clean.shape)
    folder = root / "tomograms"
    folder.mkdir()
    write_mrc(folder / "TS_01.mrc", noisy.astype(np.float32), truth["tomogram"]["pixel_size_A"])
    species = truth["species"][0]
    patch = pytest.MonkeyPatch()
    patch.setattr(registry, "_cache", {**registry.protocols(), MakeInputs.name: MakeInputs})
    project = Project.create(root / "project")
    tomo = run(project, "import-tomograms", {"files_path": str(folder)}, {})
    made = run(project, "tm-test-inputs", {"reference": str(root / "sim" / species["reference_map"])}, {})
    reference = project.output_set(made, "volumes")
    reference.replace(
        reference.get("reference").model_copy(
            update={"pixel_size_A": species["pixel_size_A"], "symmetry": species["symmetry"]}
        )
    )
    project.conn.commit()
    params = {
        "angular_step_deg": STEP,
        "protein_dark": False,  # the rendered specimen: protein bright
        "wedge_deg": [-90.0, 90.0],  # rendered, not reconstructed: no missing wedge
        "particle_diameter_A": 2 * species["radius_A"],
        "edge_A": 24.0,
        "max_count": 10,
        "refine_orientations": True,
    }
    tm = run(project, "template-matching", params, {"tomograms": f"{tomo}.tomograms", "reference": f"{made}.volumes"})
    yield project, tm, truth
    project.close()
    patch.undo()


def test_the_apoferritins_are_found(tiny: tuple[Project, int, dict]) -> None:
    project, tm, truth = tiny
    voxel = truth["tomogram"]["pixel_size_A"]
    coords = project.output_set(tm, "coordinates").arrays("x_A", "y_A", "z_A", "rotation", "score")
    picks = np.stack([coords["x_A"], coords["y_A"], coords["z_A"]], 1)[:3]  # the three best
    positions, rotations = truth_particles(truth, "apoferritin")
    match = match_picks(
        picks, positions, 2 * voxel, pick_rotations=coords["rotation"][:3], true_rotations=rotations, symmetry="O"
    )
    assert len(positions) == 3
    assert match.f1 == 1.0, (picks, positions)
    # measured (seed 7, noise seed 0), refined: 0.5-1.4 Å and 1.0-3.0°; the search's own picks (refinement off):
    # 0.7-1.5 Å and 1.2-5.2°. Before the reference kept its centre on resampling (30³ at 6 Å to 15³ at 12 Å), the
    # picks sat 7-8 Å off unrefined and 10-12 Å refined (the template's half-voxel offset, rotated)
    assert match.position_error_A.max() <= 0.2 * voxel, match.position_error_A
    assert match.orientation_error_deg.max() < STEP / 3, match.orientation_error_deg
