"""Issue 18's accuracy on a small variant of the simulator's `cell` preset, run from the command line as a user
would: the tilt series (noise-free expected counts with Poisson shot noise) imported with its TRUE projection
model and CTF, and a landmark model of its gold beads (their true positions projected); then
`tomoforge run reconstruct-tomogram` (WBP at 10 Å), `import-volumes` + `resize-volume` (the truth's ribosome map
to 10 Å, box 36), `template-matching` (per-tilt CTF and dose, 30° step with a 30 Å low-pass, refined picks, no
pick near the beads), and a subset by score through the filter syntax (`remove-duplicates` on
`coordinates[score > T]`, T in the gap of the refined scores' histogram).

The variant keeps the preset's densities on a 1920 × 1920 Å field in 1000 Å of ice (one series of 41 tilts):
18 ribosomes, 7 rubisco, 4 membrane complexes on a vesicle, a membrane sheet, a filament, 26 crowders and 4 gold
beads. Ribosomes are scored where the search looks: centres at least ``EDGE_A`` from each face.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.protocols.sta.conftest import finished_run
from tests.protocols.sta.test_pseudo import true_ctf, true_series
from tomoforge.cli.main import app
from tomoforge.engine import Project
from tomoforge.io.mrc import read_mrc, write_mrc
from tomoforge.model import CTFSeries, LandmarkModel, TiltSeries
from tomoforge.protocols.align.landmarks import write_landmarks
from tomoforge.simulate.accuracy import match_picks, truth_particles

pytestmark = pytest.mark.slow  # simulates the variant (41 tilts) and searches 551 rotations

SMALL_CELL = {
    "acquisition.tilt_series_count": 1,
    "acquisition.frames_per_tilt": 1,
    "detector.image_size": [384, 384],
    "specimen.ice_thickness_A": 1000.0,
    "specimen.ice_texture": False,  # the frames' ice only: the noise-free stack used here never holds it
    "specimen.particles.0.count": 18,
    "specimen.particles.1.count": 7,
    "specimen.particles.2.count_on_membranes": 4,
    "specimen.vesicles.count": 1,
    "specimen.vesicles.radius_A": [200.0, 250.0],
    "specimen.sheets.count": 1,
    "specimen.sheets.radius_A": [400.0, 500.0],
    "specimen.filaments.count": 1,
    "specimen.filaments.length_A": [500.0, 700.0],
    "specimen.background_count": 26,
    "specimen.fiducials.count_per_surface": 2,
}
VOXEL_A = 10.0
EDGE_A = 160.0
BEAD_EXCLUSION_A = 50.0 + 60.0  # bead radius + gold_radius_A (the default)
runner = CliRunner()


@dataclass
class Cell:
    project: Path
    truth: dict
    runs: dict[str, int]
    threshold: float
    shape_zyx: tuple[int, int, int]


def cli(project: Path, *args: str) -> int:
    """Run ``tomoforge -p PROJECT run ...`` in this process (serial executor); returns the run id."""
    result = runner.invoke(app, ["-p", str(project), "run", *args, "--executor", "serial"])
    assert result.exit_code == 0, result.output
    found = re.search(r"run (\d+) finished", result.output)
    assert found, result.output
    return int(found.group(1))


def score_gap(scores: np.ndarray) -> tuple[float, float, float]:
    """(threshold, lowest score above, highest below) at the widest gap between consecutive sorted scores
    relative to the lower one: where a user reading the refined scores' histogram would cut."""
    s = np.sort(scores)[::-1]
    ratio = s[:-1] / np.maximum(s[1:], 1e-6)
    i = int(np.argmax(ratio))
    return float(0.5 * (s[i] + s[i + 1])), float(s[i]), float(s[i + 1])


def landmark_tracks(truth: dict) -> np.ndarray:
    """(views, beads, 2) pixels from the image centre: the true beads seen through the true projection model
    (NaN outside the image), views in the truth's order."""
    series = true_series(truth, "unused.mrc")
    model = series.projection_model("all")
    beads = np.array([f["position_A"] for f in truth["fiducials"]])
    px = model.project_px(beads, truth["pixel_size_A"])
    half = np.array(truth["image_size_yx"][::-1]) / 2
    px[np.any(np.abs(px) > half - 4, axis=-1)] = np.nan
    return px


@pytest.fixture(scope="module")
def cell(tmp_path_factory: pytest.TempPathFactory, test_data: Path) -> Iterator[Cell]:
    from tomoforge.simulate import simulate

    root = tmp_path_factory.mktemp("tm_cell")
    sim = simulate(
        root / "sim", preset="cell", seed=1, overrides={"data_root": str(test_data), **SMALL_CELL}, progress=False
    )
    ts = sim.tilt_series[0]
    truth = ts.truth
    counts = np.random.default_rng(0).poisson(np.clip(read_mrc(ts.noise_free_stack), 0, None)).astype(np.float32)
    stack = write_mrc(root / "TS_01.mrc", counts, truth["pixel_size_A"])
    project_dir = root / "project"
    project = Project.create(project_dir)
    imported, files = [true_series(truth, str(stack))], {"files_path": "."}
    series_run, series = finished_run(project, "import-tilt-series", files, {}, "tilt_series", TiltSeries, imported)
    series.close()
    inputs = {"tilt_series": f"{series_run}.tilt_series"}
    ctf_run, ctf = finished_run(project, "import-ctf", {"files_path": "."}, inputs, "ctf", CTFSeries, [true_ctf(truth)])
    ctf.close()
    table = str(root / "TS_01_landmarks.tsv")
    n = write_landmarks(table, landmark_tracks(truth), [t["acquisition_order"] for t in truth["tilts"]])
    model = LandmarkModel(name="TS_01", file=table, n_landmarks=n, diameter_nm=10.0, pixel_size_A=truth["pixel_size_A"])
    model_run, models = finished_run(project, "fiducial-model", {}, inputs, "landmark_models", LandmarkModel, [model])
    models.close()
    project.close()
    reference = Path(sim.outdir) / next(s for s in truth["species"] if s["name"] == "ribosome")["reference_map"]
    runs = {"series": series_run}
    thickness = truth["config"]["specimen"]["ice_thickness_A"] + 200.0
    runs["tomograms"] = cli(
        project_dir, "reconstruct-tomogram", "--input", f"tilt_series={series_run}.tilt_series",
        "--set", "binning=2", "--set", f"thickness_A={thickness}",
    )  # fmt: skip
    runs["reference"] = cli(project_dir, "import-volumes", "--set", f"files_path={reference}")
    runs["resized"] = cli(
        project_dir, "resize-volume", "--input", f"volumes={runs['reference']}.volumes",
        "--set", f"pixel_size_A={VOXEL_A}", "--set", "box_size=36",
    )  # fmt: skip
    runs["picks"] = cli(
        project_dir, "template-matching",
        "--input", f"tomograms={runs['tomograms']}.tomograms",
        "--input", f"reference={runs['resized']}.volumes",
        "--input", f"tilt_series={series_run}.tilt_series",
        "--input", f"ctf={ctf_run}.ctf",
        "--input", f"landmark_models={model_run}.landmark_models",
        "--set", "angular_step_deg=30", "--set", "lowpass_A=30", "--set", f"edge_A={EDGE_A}",
        "--set", "particle_diameter_A=300",
    )  # fmt: skip
    with closing(Project.open(project_dir)) as project:
        scores = project.output_set(runs["picks"], "coordinates").arrays("score")["score"]
        shape = read_mrc(project.absolute(project.output_set(runs["tomograms"], "tomograms").get("TS_01").file)).shape
    threshold = score_gap(scores)[0]
    runs["subset"] = cli(
        project_dir, "remove-duplicates",
        "--input", f"coordinates={runs['picks']}.coordinates[score > {threshold:.4f}]", "--set", "distance_A=150",
    )  # fmt: skip
    yield Cell(project_dir, truth, runs, threshold, shape)


def searched_ribosomes(cell: Cell) -> tuple[np.ndarray, np.ndarray]:
    """The true ribosomes (Å, x y z; rotations) whose centres lie at least EDGE_A inside every face."""
    positions, rotations = truth_particles(cell.truth, "ribosome")
    half = np.array(cell.shape_zyx[::-1]) // 2 * VOXEL_A
    inside = np.all(np.abs(positions) <= half - EDGE_A, axis=1)
    return positions[inside], rotations[inside]


def test_ribosomes_are_found_with_their_orientations(cell: Cell) -> None:
    with closing(Project.open(cell.project)) as project:
        c = project.output_set(cell.runs["subset"], "coordinates").arrays("x_A", "y_A", "z_A", "rotation", "score")
        every = project.output_set(cell.runs["picks"], "coordinates").arrays("score")["score"]
    picks = np.stack([c["x_A"], c["y_A"], c["z_A"]], 1)
    positions, rotations = searched_ribosomes(cell)
    match = match_picks(picks, positions, 2 * VOXEL_A, pick_rotations=c["rotation"], true_rotations=rotations)
    _, above, below = score_gap(every)
    assert below < 0.6 * above, (above, below)  # the refined scores fall in two groups: ribosomes and the rest
    assert len(positions) >= 8 and len(every) > len(picks)  # the search picked more than the ribosomes
    assert match.f1 >= 0.9, (match.precision, match.recall)
    assert np.median(match.position_error_A) <= VOXEL_A
    assert match.median_orientation_error_deg <= 10.0, match.orientation_error_deg


def test_no_pick_near_the_landmark_models_beads(cell: Cell) -> None:
    with closing(Project.open(cell.project)) as project:
        c = project.output_set(cell.runs["picks"], "coordinates").arrays("x_A", "y_A", "z_A")
        log = (project.run_dir(cell.runs["picks"]) / "run.log").read_text()
    picks = np.stack([c["x_A"], c["y_A"], c["z_A"]], 1)
    beads = np.array([f["position_A"] for f in cell.truth["fiducials"]])
    distance = np.linalg.norm(picks[:, None] - beads[None], axis=-1).min(axis=1)
    assert f"TS_01: {len(beads)} gold beads of the landmark model excluded" in log
    assert distance.min() > BEAD_EXCLUSION_A - VOXEL_A  # the triangulated beads are the true ones to a voxel
