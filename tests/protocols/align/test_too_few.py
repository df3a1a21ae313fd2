"""The fiducial protocols on series with too little gold: the tiny preset finds its beads, a series without
gold fails fiducial-model with a message that says why and what to try, and a sparse landmark model fails
fiducial-alignment the same way (never a ZeroDivisionError)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.protocols.align.test_align import SERIAL, imported_simulation, run
from tomoforge.engine import execute_run
from tomoforge.methods.align.solve import TooFewLandmarksError
from tomoforge.protocols.align.fiducial import FiducialAlignmentJob, FiducialAlignmentParams, fiducial_alignment_task
from tomoforge.protocols.align.landmarks import write_landmarks


def fiducial_model(project, imp: int, **params) -> int:
    coarse = run(project, "coarse-alignment", {"binning": 2}, {"tilt_series": f"{imp}.tilt_series"})
    run_id = project.new_run(
        "fiducial-model",
        {"binning": 2, "bead_diameter_nm": 10.0, **params},
        {"tilt_series": f"{coarse}.tilt_series"},
        executor=SERIAL,
    )
    execute_run(project, run_id)
    return run_id


def test_the_tiny_preset_with_its_default_seed_has_beads_to_align(tmp_path):
    # the tiny preset had one bead per surface (the first often off the 64-px field at binning 2, or hidden
    # by a detection border of a diameter): 0 landmarks, then a ZeroDivisionError in fiducial-alignment
    project, truth, imp = imported_simulation(tmp_path, seed=0, overrides={})
    beads = fiducial_model(project, imp)
    assert project.run(beads)["state"] == "finished", project.run(beads)["error"]
    lm = project.output_set(beads, "landmark_models").get("TS_01")
    assert lm.n_landmarks >= 5 and len(truth["fiducials"]) == 6
    fid = run(
        project,
        "fiducial-alignment",
        {"rotation": "grouped"},
        {"tilt_series": f"{beads - 1}.tilt_series", "landmark_models": f"{beads}.landmark_models"},
    )
    ts = project.output_set(fid, "tilt_series").get("TS_01")
    assert abs(np.mean([t.z_rot_deg for t in ts.tilt_images]) - truth["tilt_axis_angle_deg"]) < 1.0
    project.close()


def test_a_series_without_gold_fails_fiducial_model_with_what_to_try(tmp_path):
    project, _, imp = imported_simulation(tmp_path, seed=0, overrides={"specimen.fiducials.count_per_surface": 0})
    beads = fiducial_model(project, imp)
    info = project.run(beads)
    assert info["state"] == "failed"
    error = info["error"]
    assert "ZeroDivisionError" not in error and "0 gold bead(s) tracked" in error, error
    assert "TS_01" in error and "0 gold bead(s) tracked" in error and "an alignment needs 3" in error
    assert "bead diameter 10 nm = 8.3 px at binning 2" in error
    for advice in ("bead_diameter_nm", "threshold_sd", "patch-tracking"):
        assert advice in error
    project.close()


@pytest.mark.parametrize("n_beads", [0, 2])
def test_a_sparse_landmark_model_fails_fiducial_alignment_with_a_message(tmp_path, n_beads):
    orders, tilts = [1, 2, 3, 4, 5], [0.0, 10.0, -10.0, 20.0, -20.0]
    positions = np.random.default_rng(0).uniform(-20, 20, (5, n_beads, 2))
    table = str(tmp_path / "TS_01_beads.tsv")
    write_landmarks(table, positions, orders)
    with pytest.raises(TooFewLandmarksError, match=rf"{n_beads} beads seen in 3 views or more") as err:
        job = FiducialAlignmentJob(
            table=table,
            tilts_deg=tilts,
            orders=orders,
            axis_deg=85.0,
            pixel_size_A=12.0,
            shifts_A=[[0.0, 0.0]] * 5,
            params=FiducialAlignmentParams(rotation="grouped"),
            out_file=str(tmp_path / "res.tsv"),
            gap_free_file=str(tmp_path / "gap_free.tsv"),
        )
        fiducial_alignment_task(job)
    assert "TS_01_beads.tsv is too sparse" in str(err.value) and "patch-tracking" in str(err.value)
