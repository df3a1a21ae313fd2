"""Erase fiducials on the simulator's tiny series (6 gold beads of 100 Å): at the true bead positions the
contrast left is at the background level, the painted noise matches the neighbourhood's, and pixels away
from beads are unchanged; from detection and from a fiducial-model run's landmark model."""

from __future__ import annotations

import numpy as np
import pytest

from tests.protocols.preprocess.test_motion import run, simulate_tiny, truth_of
from tomoforge.engine import Project
from tomoforge.io.mrc import read_mrc


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    """(project, simulation folder, motion-correction run, fiducial-model run) on one tiny tilt series."""
    root = tmp_path_factory.mktemp("erase")
    sim = simulate_tiny(root / "sim", series=1)
    project = Project.create(root / "project")
    imp, state = run(project, "import-tilt-series-movies", {"files_path": str(sim), "gain_file": str(sim / "gain.mrc")})
    assert state == "finished", project.run(imp)["error"]
    mc, state = run(project, "motion-correction", {}, {"tilt_series": f"{imp}.tilt_series"})
    assert state == "finished", project.run(mc)["error"]
    fm, state = run(project, "fiducial-model", {}, {"tilt_series": f"{mc}.tilt_series"})
    assert state == "finished", project.run(fm)["error"]
    yield project, sim, mc, fm
    project.close()


def true_beads_px(truth: dict, ts) -> np.ndarray:
    """(n views in stack order, beads, 2) true (x, y) pixels from the image centre."""
    from tomoforge.simulate.accuracy import true_projection_model

    points = np.array([f["position_A"] for f in truth["fiducials"]])
    projected = true_projection_model(truth).project_px(points, truth["pixel_size_A"])  # acquisition order
    return projected[[t.acquisition_order - 1 for t in ts.tilt_images]]


def bead_contrast(images: np.ndarray, beads: np.ndarray, radius_px: float) -> np.ndarray:
    """(k, 2) per bead seen whole: (mean of its disk − mean of the ring 1.6–2.6 radii) / the ring's SD, and
    the disk's SD / the ring's SD."""
    n, ny, nx = images.shape
    yy, xx = np.mgrid[:ny, :nx]
    rows = []
    for i in range(n):
        for x, y in beads[i]:
            d = np.hypot(xx - (x + nx // 2), yy - (y + ny // 2))
            disk, ring = d <= 0.8 * radius_px, (d > 1.6 * radius_px) & (d <= 2.6 * radius_px)
            if disk.sum() >= 0.9 * np.pi * (0.8 * radius_px) ** 2 and ring.sum() > 50:
                sd = images[i][ring].std()
                rows.append(((images[i][disk].mean() - images[i][ring].mean()) / sd, images[i][disk].std() / sd))
    return np.array(rows)


def far_from(beads: np.ndarray, shape: tuple[int, int, int], distance_px: float) -> np.ndarray:
    n, ny, nx = shape
    yy, xx = np.mgrid[:ny, :nx]
    far = np.ones(shape, bool)
    for i in range(n):
        for x, y in beads[i]:
            far[i] &= np.hypot(xx - (x + nx // 2), yy - (y + ny // 2)) > distance_px
    return far


@pytest.mark.parametrize("source", ["detected", "model and detected", "model"])
def test_erased_beads_leave_background_contrast_and_the_rest_unchanged(aligned, source):
    project, sim, mc, fm = aligned
    inputs = {"tilt_series": f"{mc}.tilt_series"}
    if source != "detected":
        inputs["landmark_models"] = f"{fm}.landmark_models"
    params = {"detect": source != "model"}
    er, state = run(project, "erase-fiducials", params, inputs)
    assert state == "finished", project.run(er)["error"]
    before_ts = project.output_set(mc, "tilt_series").get("TS_01")
    after_ts = project.output_set(er, "tilt_series").get("TS_01")
    before, after = read_mrc(project.absolute(before_ts.stack_file)), read_mrc(project.absolute(after_ts.stack_file))
    assert after_ts.odd_stack_file and after_ts.even_stack_file  # the halves are erased too
    beads = true_beads_px(truth_of(sim, "TS_01"), before_ts)
    radius = 50.0 / 6.0  # 100 Å beads at 6 Å/px
    was, now = bead_contrast(before, beads, radius), bead_contrast(after, beads, radius)
    assert len(was) >= 30  # 6 beads × 7 views, those wholly inside the image
    assert np.median(was[:, 0]) < -5  # measured −7.9 SD: dark gold
    # after: the contrast at the true positions is that of the background (measured mean −0.02 SD by detection)
    assert np.abs(np.median(now[:, 0])) < 0.3 and np.quantile(np.abs(now[:, 0]), 0.9) < 1.0, now[:, 0]
    if source != "model":  # every bead (measured max 0.17 SD); the model alone misses one bead on one view (8 SD)
        assert np.abs(now[:, 0]).max() < 1.0, now[:, 0]
    assert 0.8 < np.median(now[:, 1]) < 1.2  # the painted noise has the neighbourhood's SD (measured 0.99)
    far = far_from(beads, before.shape, 1.5 * radius + 2)
    assert (after[far] == before[far]).all()
    halves = read_mrc(project.absolute(after_ts.odd_stack_file)), read_mrc(project.absolute(before_ts.odd_stack_file))
    assert (
        np.median(bead_contrast(halves[0], beads, radius)[:, 0])
        > np.median(bead_contrast(halves[1], beads, radius)[:, 0]) + 3
    )


def test_without_beads_detected_nothing_changes(aligned):
    project, _, mc, _ = aligned
    er, state = run(project, "erase-fiducials", {"threshold_sd": 1000.0}, {"tilt_series": f"{mc}.tilt_series"})
    assert state == "finished", project.run(er)["error"]
    before = project.output_set(mc, "tilt_series").get("TS_01")
    after = project.output_set(er, "tilt_series").get("TS_01")
    assert np.array_equal(read_mrc(project.absolute(before.stack_file)), read_mrc(project.absolute(after.stack_file)))


def test_no_detection_and_no_model_is_refused(aligned):
    project, _, mc, _ = aligned
    er, state = run(project, "erase-fiducials", {"detect": False}, {"tilt_series": f"{mc}.tilt_series"})
    assert state == "failed" and "no landmark_models input" in project.run(er)["error"]


def test_the_detection_threshold_defaults_to_the_methods():
    import inspect

    from tomoforge.methods.preprocess.fiducials import find_beads
    from tomoforge.protocols.preprocess.erase_fiducials import EraseFiducialsParams

    assert EraseFiducialsParams().threshold_sd == inspect.signature(find_beads).parameters["threshold_sd"].default
