"""The alignment protocols as runs on a simulated tilt series (31 views ±60°, 12 beads, shot noise):
coarse → fiducial model → fiducial alignment against the truth; assign; IMOD/AreTomo export → import."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tomoforge.engine import ExecutorConfig, Project, execute_run
from tomoforge.io.mrc import read_mrc, write_mrc
from tomoforge.methods.align.projection_model import ProjectionModel, reprojection_difference, rms

SERIAL = ExecutorConfig(kind="serial")
OVERRIDES = {
    "detector.image_size": [256, 256],
    "acquisition.tilt_min_deg": -60.0,
    "acquisition.tilt_max_deg": 60.0,
    "acquisition.tilt_step_deg": 4.0,
    "specimen.fiducials.count_per_surface": 6,
    "specimen.ice_thickness_A": 600.0,
    "specimen.slab_tilt_deg": 0.0,
    "acquisition.frames_per_tilt": 1,
    "detector.xrays_per_frame": 0.0,
}


def run(project, name, params, inputs=None):
    run_id = project.new_run(name, params, inputs or {}, executor=SERIAL)
    state = execute_run(project, run_id)
    assert state == "finished", project.run(run_id)["error"]
    return run_id


def model_of(ts) -> ProjectionModel:
    views = sorted(ts.tilt_images, key=lambda t: t.acquisition_order)
    return ProjectionModel(
        [t.y_tilt_deg for t in views], [t.z_rot_deg for t in views], [[t.x_shift_A, t.y_shift_A] for t in views]
    )


def imported_simulation(root, seed: int, overrides: dict):
    """Simulate `tiny`, add shot noise to its noise-free stack (acquisition order = the mdoc's ZValue
    order), put it beside the mdoc and import it: (project, truth, import run id)."""
    from tomoforge.simulate.run import simulate
    from tomoforge.simulate.truth import read_truth

    try:
        simulate(root / "sim", preset="tiny", seed=seed, overrides=overrides)
    except FileNotFoundError as exc:
        pytest.skip(f"simulator data missing: {exc}")
    truth = read_truth(root / "sim" / "truth" / "TS_01" / "truth.json")
    counts = np.random.default_rng(0).poisson(read_mrc(root / "sim" / "truth" / "TS_01" / "noise_free_tilt_series.mrc"))
    folder = root / "ts"
    folder.mkdir()
    shutil.copy(root / "sim" / "TS_01.mrc.mdoc", folder / "TS_01.mrc.mdoc")
    write_mrc(folder / "TS_01.mrc", counts.astype(np.float32), truth["pixel_size_A"])
    project = Project.create(root / "project")
    return project, truth, run(project, "import-tilt-series", {"files_path": str(folder)})


def fiducial_chain(project, imp: int) -> dict[str, int]:
    """coarse-alignment → fiducial-model → fiducial-alignment (binning 2, 10 nm beads) from import run ``imp``."""
    coarse = run(project, "coarse-alignment", {"binning": 2}, {"tilt_series": f"{imp}.tilt_series"})
    beads = run(
        project, "fiducial-model", {"binning": 2, "bead_diameter_nm": 10.0}, {"tilt_series": f"{coarse}.tilt_series"}
    )
    fid = run(
        project,
        "fiducial-alignment",
        {"rotation": "grouped"},
        {"tilt_series": f"{coarse}.tilt_series", "landmark_models": f"{beads}.landmark_models"},
    )
    return {"import": imp, "coarse": coarse, "beads": beads, "fiducial": fid}


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    project, truth, imp = imported_simulation(tmp_path_factory.mktemp("align"), seed=2, overrides=OVERRIDES)
    yield project, truth, fiducial_chain(project, imp)
    project.close()


def truth_model(truth) -> ProjectionModel:
    t = sorted(truth["tilts"], key=lambda r: r["acquisition_order"])
    return ProjectionModel(
        [r["y_tilt_deg"] for r in t], [r["z_rot_deg"] for r in t], [[r["x_shift_A"], r["y_shift_A"]] for r in t]
    )


def test_fiducial_alignment_meets_the_issue_floors(aligned):
    project, truth, runs = aligned
    ts = project.output_set(runs["fiducial"], "tilt_series").get("TS_01")
    assert ts.aligned and not ts.interpolated
    model, true = model_of(ts), truth_model(truth)
    beads = np.array([f["position_A"] for f in truth["fiducials"]])
    px = truth["pixel_size_A"] * 2  # the binning the beads were tracked at
    assert rms(reprojection_difference(model, true, beads)) / px < 0.5
    assert abs(model.z_rot_deg.mean() - true.z_rot_deg.mean()) < 0.3
    offset = np.mean(
        model.tilt_deg - np.array([t.tilt_angle_deg for t in sorted(ts.tilt_images, key=lambda t: t.acquisition_order)])
    )
    assert abs(offset - truth["tilt_offset_deg"]) < 0.3
    lm = project.output_set(runs["fiducial"], "landmark_models").get("TS_01")
    assert lm.has_residuals and lm.n_landmarks >= 8
    table = np.loadtxt(project.root / lm.file, skiprows=1)
    assert np.sqrt(np.mean(table[:, 4] ** 2 + table[:, 5] ** 2)) < 1.0  # includes dropped points


def test_coarse_alignment_matches_the_truth_up_to_a_translation(aligned):
    project, truth, runs = aligned
    ts = project.output_set(runs["coarse"], "tilt_series").get("TS_01")
    model, true = model_of(ts), truth_model(truth)
    a = true.matrices()
    e = (model.shift_A - true.shift_A) / (truth["pixel_size_A"] * 2)
    t, *_ = np.linalg.lstsq(a.reshape(-1, 3), e.reshape(-1), rcond=None)  # the free 3D translation
    err = np.linalg.norm(e - a @ t, axis=1)
    print(f"coarse alignment: median {np.median(err):.2f} px, max {err.max():.2f} px at binning 2")
    # Projection matching removes the parallax drift of beads on two surfaces 600 Å apart
    # (stretched correlation alone: median 0.86 px, max 2.59 px on these data).
    assert np.median(err) < 0.4 and err.max() < 1.2, np.round(err, 2)


def test_assign_copies_by_acquisition_order_and_export_import_round_trips(aligned, tmp_path):
    project, truth, runs = aligned
    assign = run(
        project,
        "assign-alignment",
        {},
        {"source": f"{runs['fiducial']}.tilt_series", "tilt_series": f"{runs['import']}.tilt_series"},
    )
    src = model_of(project.output_set(runs["fiducial"], "tilt_series").get("TS_01"))
    got = model_of(project.output_set(assign, "tilt_series").get("TS_01"))
    assert np.allclose(got.shift_A, src.shift_A) and np.allclose(got.z_rot_deg, src.z_rot_deg)
    exported = {}
    for fmt, tol_shift_A, tol_deg in (("imod", 0.01 * 6.0, 0.01), ("aretomo", 0.001 * 6.0, 0.005)):
        exp = run(project, "export-alignment", {"format": fmt}, {"tilt_series": f"{runs['fiducial']}.tilt_series"})
        out = project.root / "runs"
        files = list(out.glob(f"{exp:04d}_*/out/TS_01.*"))
        assert files, list(out.iterdir())
        folder = files[0].parent
        exported[fmt] = folder
        imp = run(
            project,
            "import-alignment",
            {"files_path": str(folder), "format": fmt},
            {"tilt_series": f"{runs['import']}.tilt_series"},
        )
        back = model_of(project.output_set(imp, "tilt_series").get("TS_01"))
        assert np.allclose(back.shift_A, src.shift_A, atol=tol_shift_A)
        assert np.allclose(back.z_rot_deg, src.z_rot_deg, atol=tol_deg)
        assert np.allclose(back.tilt_deg, src.tilt_deg, atol=0.01)
        log = next(out.glob(f"{imp:04d}_*/run.log")).read_text()
        assert "WARNING" not in log

    # tiltalign's magnification variables: the import keeps rotation and shift, and says what it drops
    from tomoforge.io.imod import read_xf, write_xf

    scaled = tmp_path / "scaled"
    shutil.copytree(exported["imod"], scaled)
    xf = read_xf(scaled / "TS_01.xf")
    xf[5, :, :2] *= 1.01
    write_xf(scaled / "TS_01.xf", xf, overwrite=True)
    imp = run(
        project, "import-alignment", {"files_path": str(scaled)}, {"tilt_series": f"{runs['import']}.tilt_series"}
    )
    log = next(out.glob(f"{imp:04d}_*/run.log")).read_text()
    assert "TS_01: WARNING:" in log and "1 of " in log and "1.0000–1.0100" in log and "up to 10.0 px" in log, log
    back = model_of(project.output_set(imp, "tilt_series").get("TS_01"))
    assert np.allclose(back.z_rot_deg, src.z_rot_deg, atol=0.01)


def test_patch_tracking_rejects_contours_no_longer_than_their_overlap():
    from pydantic import ValidationError

    from tomoforge.protocols.align.patches import PatchTrackingParams, patch_options

    with pytest.raises(ValidationError, match="contour_views"):
        PatchTrackingParams(contour_views=4, contour_overlap=4)
    assert patch_options(PatchTrackingParams(contour_views=0), 3.0).contour_views is None  # whole tracks
