"""A stack + .rawtlt, without its mdoc, through import-tilt-series-stack, alignment and reconstruction.

The `tiny` simulation as the alignment tests make it (31 views ±60°, 12 beads, shot noise), but its views
written as IMOD keeps them: a stack sorted by tilt angle with a .rawtlt. The dose-symmetric scheme
(groups of 1 from 0°, the simulator's order for that group size) must give back the true acquisition order
and doses, and the alignment must meet the floors of the mdoc path (tests/protocols/align/test_align.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.protocols.align.test_align import OVERRIDES, fiducial_chain, model_of, run, truth_model
from tomoforge.engine import Project
from tomoforge.io.imod import write_tlt
from tomoforge.io.mrc import read_mrc, write_mrc
from tomoforge.methods.align.projection_model import reprojection_difference, rms


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@pytest.fixture(scope="module")
def from_stack(tmp_path_factory):
    from tomoforge.simulate.run import simulate

    root = tmp_path_factory.mktemp("stack_pipeline")
    try:
        sim = simulate(
            root / "sim", preset="tiny", seed=2, overrides={**OVERRIDES, "acquisition.group_size": 1}, progress=False
        )
    except FileNotFoundError as exc:
        pytest.skip(f"simulator data missing: {exc}")
    series = sim.tilt_series[0]
    truth = series.truth
    tilts = truth["tilts"]  # acquisition order, as the noise-free stack's sections
    by_angle = np.argsort([r["nominal_tilt_deg"] for r in tilts])
    counts = np.random.default_rng(0).poisson(read_mrc(series.noise_free_stack)).astype(np.float32)
    folder = root / "stacks"
    folder.mkdir()
    write_mrc(folder / "TS_01.st", counts[by_angle], truth["pixel_size_A"])
    write_tlt(folder / "TS_01.rawtlt", np.array([tilts[i]["nominal_tilt_deg"] for i in by_angle]))
    project = Project.create(root / "project")
    params = {
        "files_path": str(folder),
        "pattern": "*.st",
        "order": "dose-symmetric",
        "group_size": 1,
        "dose_per_tilt_e_A2": tilts[0]["dose"],
        "tilt_axis_angle_deg": truth["tilt_axis_angle_deg"],
        "voltage_kV": truth["voltage_kV"],
    }
    imp = run(project, "import-tilt-series-stack", params)
    yield project, truth, read_mrc(series.tomogram), fiducial_chain(project, imp)
    project.close()


def test_the_scheme_gives_the_true_acquisition_order_and_doses(from_stack):
    project, truth, _, runs = from_stack
    ts = project.output_set(runs["import"], "tilt_series").get("TS_01")
    true = {r["nominal_tilt_deg"]: r for r in truth["tilts"]}
    got = [(t.acquisition_order, t.accumulated_dose_e_A2) for t in ts.tilt_images]
    want = [
        (true[t.tilt_angle_deg]["acquisition_order"], true[t.tilt_angle_deg]["accumulated_dose"])
        for t in ts.tilt_images
    ]
    assert [g[0] for g in got] == [w[0] for w in want]
    assert np.allclose([g[1] for g in got], [w[1] for w in want])
    assert [t.index for t in ts.tilt_images] == list(range(len(true)))  # the stack is sorted by angle


def test_alignment_from_the_stack_meets_the_floors_of_the_mdoc_path(from_stack):
    project, truth, _, runs = from_stack
    ts = project.output_set(runs["fiducial"], "tilt_series").get("TS_01")
    model, true = model_of(ts), truth_model(truth)
    beads = np.array([f["position_A"] for f in truth["fiducials"]])
    px = truth["pixel_size_A"] * 2
    error_px = rms(reprojection_difference(model, true, beads)) / px
    offset = np.mean(
        model.tilt_deg - np.array([t.tilt_angle_deg for t in sorted(ts.tilt_images, key=lambda t: t.acquisition_order)])
    )
    print(
        f"stack path: fiducial {error_px:.3f} px RMS at binning 2, tilt offset {offset:.3f}° (true {truth['tilt_offset_deg']})"
    )
    assert error_px < 0.5
    assert abs(model.z_rot_deg.mean() - true.z_rot_deg.mean()) < 0.3
    assert abs(offset - truth["tilt_offset_deg"]) < 0.3
    coarse = model_of(project.output_set(runs["coarse"], "tilt_series").get("TS_01"))
    a = true.matrices()
    e = (coarse.shift_A - true.shift_A) / px
    t, *_ = np.linalg.lstsq(a.reshape(-1, 3), e.reshape(-1), rcond=None)  # the free 3D translation
    err = np.linalg.norm(e - a @ t, axis=1)
    assert np.median(err) < 0.4 and err.max() < 1.2, np.round(err, 2)


def test_reconstruction_from_the_stack_alignment_matches_the_truth_tomogram(from_stack):
    project, truth, truth_tomogram, runs = from_stack
    binning = truth["tomogram"]["binning"]
    rec = run(
        project,
        "reconstruct-tomogram",
        {"binning": binning, "thickness_px": truth_tomogram.shape[0], "invert": True},
        {"tilt_series": f"{runs['fiducial']}.tilt_series"},
    )
    tomo = project.output_set(rec, "tomograms").get("TS_01")
    volume = read_mrc(project.absolute(tomo.file))
    assert volume.shape == truth_tomogram.shape
    r = pearson(volume, truth_tomogram)
    print(f"stack path: tomogram vs truth r = {r:.3f}")
    assert r > 0.7, r  # measured 0.759
