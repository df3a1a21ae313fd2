"""reconstruct-tomogram as runs on the `small` simulation (41 views ±60°, 1024² at 3 Å): its noise-free tilt
series with shot noise at the simulated dose, imported from its mdoc, given its true alignment through IMOD
files and import-alignment, reconstructed at binning 4 into the truth tomogram's grid (12 Å)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tomoforge.engine import ExecutorConfig, Project, execute_run
from tomoforge.io.imod import projection_model_to_xf, write_tlt, write_xf
from tomoforge.io.mrc import read_mrc, read_voxel_size, write_mrc

SERIAL = ExecutorConfig(kind="serial")


def run(project, name, params, inputs):
    run_id = project.new_run(name, params, inputs, executor=SERIAL)
    return run_id, execute_run(project, run_id)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@pytest.fixture(scope="module")
def aligned(small_sim, tmp_path_factory):
    """(project, truth, import run, run with the true alignment, truth tomogram (z, y, x) at 12 Å)."""
    root = tmp_path_factory.mktemp("reconstruct")
    ts = small_sim.tilt_series[0]
    truth = ts.truth
    folder = root / "ts"
    folder.mkdir()
    shutil.copy(ts.mdoc, folder / "TS_01.mrc.mdoc")
    counts = np.random.default_rng(0).poisson(read_mrc(ts.noise_free_stack)).astype(np.float32)  # mdoc order
    write_mrc(folder / "TS_01.mrc", counts, truth["pixel_size_A"])
    del counts
    project = Project.create(root / "project")
    imp, state = run(project, "import-tilt-series", {"files_path": str(folder)}, {})
    assert state == "finished", project.run(imp)["error"]
    tilts = sorted(truth["tilts"], key=lambda r: r["nominal_tilt_deg"])  # import-alignment's order
    px = truth["pixel_size_A"]
    write_xf(
        root / "TS_01.xf",
        projection_model_to_xf(
            [r["z_rot_deg"] for r in tilts], [r["x_shift_A"] for r in tilts], [r["y_shift_A"] for r in tilts], px
        ),
    )
    write_tlt(root / "TS_01.tlt", np.array([r["y_tilt_deg"] for r in tilts]))
    ali, state = run(project, "import-alignment", {"files_path": str(root)}, {"tilt_series": f"{imp}.tilt_series"})
    assert state == "finished", project.run(ali)["error"]
    yield project, truth, imp, ali, read_mrc(ts.tomogram)
    project.close()


def test_wbp_run_makes_the_truth_tomogram_with_halves(aligned):
    project, truth, _, ali, truth_tomogram = aligned
    nz = truth_tomogram.shape[0]
    rec, state = run(
        project,
        "reconstruct-tomogram",
        {"binning": 4, "thickness_px": nz, "invert": True, "odd_even": True},
        {"tilt_series": f"{ali}.tilt_series"},
    )
    assert state == "finished", project.run(rec)["error"]
    tomo = project.output_set(rec, "tomograms").get("TS_01")
    assert tomo.pixel_size_A == pytest.approx(12.0) and tomo.binning == 4 and tomo.tilt_series == "TS_01"
    assert tomo.size_xyz == (256, 256, nz) and tomo.origin_A == (0.0, 0.0, 0.0)
    volume = read_mrc(project.absolute(tomo.file))
    assert volume.shape == truth_tomogram.shape
    assert read_voxel_size(project.absolute(tomo.file)) == pytest.approx(12.0, abs=1e-3)
    r = pearson(volume, truth_tomogram)
    assert r >= 0.45, r  # measured 0.530 (shot noise, CTF not corrected)
    odd, even = (read_mrc(project.absolute(f)) for f in (tomo.odd_file, tomo.even_file))
    # alternate views: half the views each at twice the angular weight, so odd + even is the whole (linear)
    assert pearson(odd, even) > 0.18 and pearson(odd + even, truth_tomogram) > 0.45  # measured 0.251, 0.530
    log = (project.run_dir(rec) / "run.log").read_text()
    assert "TS_01: 100% of 256 rows back-projected" in log and "TS_01_ODD: 50% of 256 rows" in log
    assert "odd/even from alternate views" in log


def test_sirt_skips_excluded_views_and_applies_shifts(aligned, tmp_path):
    """Two views are excluded, and their pixels then spoilt in the stack file: the SIRT tomogram stays as good.
    With x/z shifts the specimen moves by that much in the tomogram."""
    project, truth, imp, ali, truth_tomogram = aligned
    nz = truth_tomogram.shape[0]
    ex, state = run(project, "exclude-views", {"acquisition_orders": [2, 5]}, {"tilt_series": f"{ali}.tilt_series"})
    assert state == "finished", project.run(ex)["error"]
    ts = project.output_set(ex, "tilt_series").get("TS_01")
    stack = project.absolute(ts.tilt_images[0].file)
    original = read_mrc(stack)
    spoilt = original.copy()
    for t in ts.tilt_images:
        if t.excluded:
            spoilt[t.index] = 1e4 * np.random.default_rng(t.index).standard_normal(spoilt.shape[1:])
    write_mrc(stack, spoilt, read_voxel_size(stack), overwrite=True)
    try:
        params = {"method": "sirt", "iterations": 8, "binning": 4, "thickness_px": nz, "invert": True}
        rec, state = run(project, "reconstruct-tomogram", params, {"tilt_series": f"{ex}.tilt_series"})
        assert state == "finished", project.run(rec)["error"]
        shifted, state = run(
            project,
            "reconstruct-tomogram",
            {**params, "x_shift_A": 24.0, "z_shift_A": -36.0},
            {"tilt_series": f"{ex}.tilt_series"},
        )
        assert state == "finished", project.run(shifted)["error"]
    finally:
        write_mrc(stack, original, read_voxel_size(stack), overwrite=True)
    tomo = project.output_set(rec, "tomograms").get("TS_01")
    volume = read_mrc(project.absolute(tomo.file))
    assert pearson(volume, truth_tomogram) >= 0.45  # measured 0.557
    assert "2 excluded view(s) skipped" in (project.run_dir(rec) / "run.log").read_text()
    moved = project.output_set(shifted, "tomograms").get("TS_01")
    assert moved.origin_A == (-24.0, 0.0, 36.0)
    other = read_mrc(project.absolute(moved.file))
    # specimen +2 voxels in x, −3 in z: other[z − 3, y, x + 2] = volume[z, y, x]
    assert pearson(other[: -3 - 8, :, 2 + 8 : -8], volume[3:-8, :, 8 : -2 - 8]) > 0.98  # measured 0.999 (unmoved: 0.70)


def test_unaligned_tilt_series_is_refused_unless_allowed(aligned):
    project, _, imp, _, _ = aligned
    rec, state = run(
        project, "reconstruct-tomogram", {"binning": 8, "thickness_px": 16}, {"tilt_series": f"{imp}.tilt_series"}
    )
    assert state == "failed" and "TS_01 is not aligned" in project.run(rec)["error"]
    rec, state = run(
        project,
        "reconstruct-tomogram",
        {"binning": 8, "thickness_px": 16, "allow_unaligned": True},
        {"tilt_series": f"{imp}.tilt_series"},
    )
    assert state == "finished", project.run(rec)["error"]
    assert "WARNING TS_01: not aligned" in (project.run_dir(rec) / "run.log").read_text()


def test_the_parameters_default_to_the_methods_defaults():
    """reconstruct-tomogram shows the methods' own defaults (methods/reconstruct/settings.py), not copies."""
    import inspect

    from tomoforge.methods.reconstruct.sirt import reconstruct_sirt
    from tomoforge.methods.reconstruct.wbp import reconstruct_wbp
    from tomoforge.protocols.reconstruct.tomogram import ReconstructParams

    p = ReconstructParams()
    wbp = inspect.signature(reconstruct_wbp).parameters
    sirt = inspect.signature(reconstruct_sirt).parameters
    pairs = {
        "radial_cutoff": wbp["cutoff"],
        "radial_falloff": wbp["falloff"],
        "sirt_like_iterations": wbp["sirt_like_iterations"],
        "oversampling": wbp["oversampling"],
        "memory_GB": wbp["memory_GB"],
        "invert": wbp["invert"],
        "iterations": sirt["iterations"],
        "relaxation": sirt["relaxation"],
    }
    assert {name: getattr(p, name) for name in pairs} == {name: q.default for name, q in pairs.items()}
    assert sirt["memory_GB"].default == p.memory_GB
