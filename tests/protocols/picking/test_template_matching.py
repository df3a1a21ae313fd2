"""The template-matching protocol end to end on a synthetic tomogram with known particles: imported tomogram,
reference, tilt series and CTF (made by a test protocol until import-volumes exists) -> every particle picked
within a voxel, with its orientation; score and angle maps; the histogram PNG; bulk-written coordinates."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from tests.methods.picking import synthetic
from tomoforge.engine import ExecutorConfig, Project, Protocol, ProtocolParams, Task, execute_run, param, registry
from tomoforge.io.mrc import read_mrc, write_mrc
from tomoforge.io.plot_data import read_plot_data
from tomoforge.model import Acquisition, CTFSeries, CTFTiltImage, TiltImage, TiltSeries
from tomoforge.model.volume import Volume
from tomoforge.simulate.accuracy import match_picks

SERIAL = ExecutorConfig(kind="serial")
SHAPE = (34, 40, 40)


class InputsParams(ProtocolParams):
    reference: str = param(..., help="reference MRC")


@dataclass(frozen=True, kw_only=True)
class InputsJob:
    reference: str


def inputs_task(job: InputsJob) -> str:
    return job.reference


class MakeInputs(Protocol):
    """Test stand-in for import-volumes: the reference Volume, and the tilt series and CTF of the tomogram."""

    name = "tm-test-inputs"
    Params = InputsParams
    outputs: ClassVar = {"volumes": Volume, "tilt_series": TiltSeries, "ctf": CTFSeries}

    def tasks(self) -> Iterator[Task[Any]]:
        yield Task(inputs_task, InputsJob(reference=self.params.reference), key="inputs")

    def collect(self, task: Task[Any], result: str) -> None:
        w = synthetic.WEIGHTING
        self.emit("volumes", Volume(name="reference", file=result, pixel_size_A=synthetic.PIXEL_A), task)
        views = [
            TiltImage(acquisition_order=i + 1, tilt_angle_deg=t, accumulated_dose_e_A2=d)
            for i, (t, d) in enumerate(zip(w.tilt_angles_deg, w.doses_e_A2 or ()))
        ]
        acq = Acquisition(pixel_size_A=5.0, amplitude_contrast=w.amplitude_contrast)
        self.emit("tilt_series", TiltSeries(name="TS_01", acquisition=acq, tilt_images=views), task)
        entries = [
            CTFTiltImage(acquisition_order=i + 1, tilt_angle_deg=t, defocus_u_A=f, defocus_v_A=f)
            for i, (t, f) in enumerate(zip(w.tilt_angles_deg, w.defocus_A or ()))
        ]
        self.emit("ctf", CTFSeries(name="TS_01", entries=entries), task)


def run(project: Project, protocol: str, params: dict[str, Any], inputs: dict[str, str]) -> int:
    run_id = project.new_run(protocol, params, inputs, executor=SERIAL)
    assert execute_run(project, run_id) == "finished", project.run(run_id)["error"]
    return run_id


@pytest.fixture(scope="module")
def matched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, int, synthetic.Synthetic]]:
    folder = tmp_path_factory.mktemp("tm")
    scene = synthetic.tomogram(SHAPE, spacing=15, noise_sd=1.0, seed=4)
    write_mrc(folder / "TS_01.mrc", scene.volume, synthetic.PIXEL_A)
    write_mrc(folder / "reference.mrc", synthetic.template(), synthetic.PIXEL_A)
    patch = pytest.MonkeyPatch()
    patch.setattr(registry, "_cache", {**registry.protocols(), MakeInputs.name: MakeInputs})
    project = Project.create(folder / "project")
    tomo = run(project, "import-tomograms", {"files_path": str(folder), "pattern": "TS_*.mrc"}, {})
    made = run(project, "tm-test-inputs", {"reference": str(folder / "reference.mrc")}, {})
    params = {"angular_step_deg": 25.0, "min_distance_A": 80.0, "edge_A": 90.0}
    inputs = {
        "tomograms": f"{tomo}.tomograms",
        "reference": f"{made}.volumes",
        "tilt_series": f"{made}.tilt_series",
        "ctf": f"{made}.ctf",
    }
    tm = run(project, "template-matching", params, inputs)
    yield project, tm, scene
    project.close()
    patch.undo()


def test_every_particle_is_picked_with_its_orientation(matched: tuple[Project, int, synthetic.Synthetic]) -> None:
    project, tm, scene = matched
    coords = project.output_set(tm, "coordinates").arrays("x_A", "y_A", "z_A", "rotation", "score", "tomogram")
    picks = np.stack([coords["x_A"], coords["y_A"], coords["z_A"]], 1)
    centre = np.array(SHAPE) // 2
    truth = (scene.positions_zyx - centre)[:, ::-1] * synthetic.PIXEL_A  # Å from the centre, (x, y, z)
    match = match_picks(
        picks, truth, 2 * synthetic.PIXEL_A, pick_rotations=coords["rotation"], true_rotations=scene.rotations
    )
    assert match.f1 == 1.0
    assert match.position_error_A.max() <= synthetic.PIXEL_A
    assert match.median_orientation_error_deg < 15.0
    assert match.orientation_error_deg.max() < 25.0
    assert set(coords["tomogram"]) == {"TS_01"}
    assert np.all(np.diff(coords["score"]) <= 0)  # best first


def test_maps_and_histogram_are_written(matched: tuple[Project, int, synthetic.Synthetic]) -> None:
    project, tm, scene = matched
    scores = project.output_set(tm, "score_maps").get("TS_01")
    angles = project.output_set(tm, "angle_maps").get("TS_01")
    score_map = read_mrc(project.absolute(scores.file))
    assert score_map.shape == SHAPE
    picks = project.output_set(tm, "coordinates").arrays("score")["score"]
    # a pick's score is its refined score: the search's at its voxel or better (rotation and position refined)
    assert picks.max() >= score_map.max() - 1e-3
    index = read_mrc(project.absolute(angles.file))
    rotations = np.load(Path(project.absolute(angles.file)).with_name("TS_01_rotations.npy"))
    assert index.max() < len(rotations) and np.all(index == np.round(index))
    png = Path(project.absolute(scores.file)).with_name("TS_01_histogram.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    histogram = read_plot_data(png.with_name("TS_01_histogram.plot.json"))  # drawn interactively by the web
    counted = sum(y for y in histogram.series[0].y if y is not None)  # the voxels away from the edges
    assert 0.1 * score_map.size < counted <= score_map.size and histogram.log_y
    assert picks.min() >= histogram.markers[0].value  # every pick is above the threshold drawn
    log = (project.run_dir(tm) / "run.log").read_text()
    assert "TS_01: 8 picks above" in log


def test_cones_around_the_normals_of_a_coordinate_set(matched: tuple[Project, int, synthetic.Synthetic]) -> None:
    # membrane-protein style: each particle searched only within 20° of the z axis of the nearest given point
    # (here the particles' true axes at their positions); away from the points, nothing is searched
    from tests.protocols.sta.conftest import coordinate_run

    project, tm, scene = matched
    tomograms = next(r["id"] for r in project.runs() if r["protocol"] == "import-tomograms")
    centre = np.array(SHAPE) // 2
    truth = (scene.positions_zyx - centre)[:, ::-1] * synthetic.PIXEL_A
    normals = coordinate_run(project, tomograms, "TS_01", truth, scene.rotations)
    inputs = project_inputs(project, tm) | {"normals": f"{normals}.coordinates"}
    params = {"angular_step_deg": 25.0, "min_distance_A": 80.0, "edge_A": 90.0, "cone_deg": 20.0}
    coned = run(project, "template-matching", params | {"normals_max_distance_A": 30.0}, inputs)
    c = project.output_set(coned, "coordinates").arrays("x_A", "y_A", "z_A", "rotation")
    picks = np.stack([c["x_A"], c["y_A"], c["z_A"]], 1)
    match = match_picks(
        picks, truth, 2 * synthetic.PIXEL_A, pick_rotations=c["rotation"], true_rotations=scene.rotations
    )
    assert match.f1 == 1.0
    axes = c["rotation"][match.pick_index][:, :, 2]
    cos = np.einsum("ka,ka->k", axes, scene.rotations[match.true_index][:, :, 2])
    assert np.all(cos >= np.cos(np.deg2rad(20.0 + 4.0)))  # within the cone (+ the normals' grouping)
    assert match.median_orientation_error_deg < 15.0
    log = (project.run_dir(coned) / "run.log").read_text()
    found = re.search(r"TS_01: (\d+) rotations", log)
    assert found is not None
    searched = int(found.group(1))
    assert searched < 0.3 * 951  # 8 cones of 20°: 8 (1 − cos 20°) / 2 = 24 % of SO(3) at most


def project_inputs(project: Project, run_id: int) -> dict[str, str]:
    """The inputs of a run as given (name → RUN.OUTPUT; none of them filtered here)."""
    return {name: f"{p.run_id}.{p.output}" for name, p in project.run_inputs(run_id).items()}


def test_a_reference_resampled_to_an_odd_box_keeps_its_centre(tmp_path: Path) -> None:
    """A blob on voxel 15 of a 30³ map at 6 Å, resampled to 12 Å (15³): its centre stays on voxel 15 // 2 = 7.
    A plain Fourier crop keeps voxel 0 and put it on 7.5: every pick then sat R · (½, ½, ½) voxel (10 Å) off
    (the tiny preset's apoferritins)."""
    from tomoforge.protocols.picking.template_matching import _resampled

    axis = np.arange(30) - 15.0
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    write_mrc(tmp_path / "blob.mrc", np.exp(-(x * x + y * y + z * z) / 18.0).astype(np.float32), 6.0)
    out = _resampled(str(tmp_path / "blob.mrc"), 6.0, 12.0)
    assert out.shape == (15, 15, 15)
    w = np.clip(out, 0, None)
    centre = [float((np.indices(out.shape)[a] * w).sum() / w.sum()) for a in range(3)]
    np.testing.assert_allclose(centre, 7.0, atol=0.02)
