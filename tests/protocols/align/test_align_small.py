"""The alignment protocols on the simulator's `small` preset (41 tilts ±60° of 1024² at 3 Å, 16 gold
beads on the two surfaces of a 1100 Å slab tilted by 2°), against its truth, at binning 4 (12 Å/px).

Tilt images are the gain-corrected sums of the simulated frames (shot noise, hot pixels, X-rays,
≈3 Å of beam motion left in): coarse alignment → fiducial model → fiducial alignment, and patch
tracking. Comparisons are after removing the free gauge of an alignment: a common 3D translation
and, where said, a common rotation about the tilt axis (a tilt offset: adding δ to all tilts and
turning the specimen by −δ about Y projects identically, so no alignment can see it).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.protocols.align.test_align import model_of, run, truth_model
from tomoforge.engine import Project
from tomoforge.io.movies import read_movie
from tomoforge.io.mrc import read_mrc, write_mrc
from tomoforge.methods.align.consensus import point_grid
from tomoforge.methods.align.projection_model import reprojection_difference, rms

BINNING = 4


def frame_sums(sim) -> np.ndarray:
    """(n, y, x) gain-corrected frame sums in acquisition order (the truth's movie order)."""
    gain = read_mrc(sim.gain).astype(np.float32)
    return np.stack([read_movie(m).sum(axis=0) * gain for m in sim.tilt_series[0].movies]).astype(np.float32)


def without_gold(images: np.ndarray, truth: dict) -> np.ndarray:
    """The images with every gold bead (where the true model puts it) replaced by the image mean:
    protein-only data for fiducial-less alignment."""
    px = truth["pixel_size_A"]
    uv = truth_model(truth).project_px(np.array([f["position_A"] for f in truth["fiducials"]]), px)
    n, ny, nx = images.shape
    yy, xx = np.mgrid[:ny, :nx]
    radius = 0.7 * truth["fiducials"][0]["diameter_A"] / px
    out = images.copy()
    for v in range(n):
        d2 = (xx[None] - nx // 2 - uv[v, :, 0, None, None]) ** 2 + (yy[None] - ny // 2 - uv[v, :, 1, None, None]) ** 2
        out[v][(d2 <= radius**2).any(axis=0)] = images[v].mean()
    return out


def imported(root, sim, images: np.ndarray, name: str):
    """A project holding the tilt series `images` with the simulated mdoc: (project, import run id)."""
    folder = root / name
    folder.mkdir()
    shutil.copy(sim.tilt_series[0].mdoc, folder / "TS_01.mrc.mdoc")
    write_mrc(folder / "TS_01.mrc", images, sim.tilt_series[0].truth["pixel_size_A"])
    project = Project.create(root / f"project_{name}")
    return project, run(project, "import-tilt-series", {"files_path": str(folder)})


@pytest.fixture(scope="module")
def small_runs(small_sim, tmp_path_factory):
    root = tmp_path_factory.mktemp("align_small")
    truth = small_sim.tilt_series[0].truth
    sums = frame_sums(small_sim)
    project, imp = imported(root, small_sim, sums, "gold")
    coarse = run(project, "coarse-alignment", {"binning": BINNING}, {"tilt_series": f"{imp}.tilt_series"})
    beads = run(
        project,
        "fiducial-model",
        {"binning": BINNING, "bead_diameter_nm": 10.0},
        {"tilt_series": f"{coarse}.tilt_series"},
    )
    fid = run(
        project,
        "fiducial-alignment",
        {"rotation": "grouped"},
        {"tilt_series": f"{coarse}.tilt_series", "landmark_models": f"{beads}.landmark_models"},
    )
    patches = run(project, "patch-tracking", {"binning": BINNING}, {"tilt_series": f"{coarse}.tilt_series"})
    bare, bare_imp = imported(root, small_sim, without_gold(sums, truth), "protein")
    bare_coarse = run(bare, "coarse-alignment", {"binning": BINNING}, {"tilt_series": f"{bare_imp}.tilt_series"})
    bare_patches = run(bare, "patch-tracking", {"binning": BINNING}, {"tilt_series": f"{bare_coarse}.tilt_series"})
    yield {
        "truth": truth,
        "project": project,
        "coarse": coarse,
        "fiducial": fid,
        "patches": patches,
        "bare": bare,
        "bare_coarse": bare_coarse,
        "bare_patches": bare_patches,
    }
    project.close()
    bare.close()


def aligned_model(project, run_id):
    return model_of(project.output_set(run_id, "tilt_series").get("TS_01"))


def shift_errors(model, truth) -> np.ndarray:
    """Per-view error (px at the alignment's binning) of the shifts, the free 3D translation removed."""
    true = truth_model(truth)
    a = true.matrices()
    e = (model.shift_A - true.shift_A) / (truth["pixel_size_A"] * BINNING)
    t, *_ = np.linalg.lstsq(a.reshape(-1, 3), e.reshape(-1), rcond=None)
    return np.linalg.norm(e - a @ t, axis=1)


def specimen_points(truth) -> np.ndarray:
    """A 5 × 5 × 3 grid over the middle 70 % of the field and ±400 Å in height."""
    return point_grid(0.35 * truth["image_size_yx"][1] * truth["pixel_size_A"], 400.0)


@pytest.mark.slow
def test_fiducial_alignment_on_small_meets_the_issue_floors(small_runs):
    truth, project = small_runs["truth"], small_runs["project"]
    model, true = aligned_model(project, small_runs["fiducial"]), truth_model(truth)
    beads = np.array([f["position_A"] for f in truth["fiducials"]])
    px = truth["pixel_size_A"] * BINNING
    err = rms(reprojection_difference(model, true, beads, remove_tilt_offset=True)) / px
    print(f"fiducial alignment on small: {err:.3f} px RMS at binning {BINNING}")
    assert err < 0.2  # issue floor 0.5 px; measured 0.067 px
    assert abs(model.z_rot_deg.mean() - true.z_rot_deg.mean()) < 0.1  # floor 0.3°; measured 0.008°
    # The tilt offset: the slab is tilted by 2° (1.0° of it about Y), and levelling the beads makes
    # the slab, not the tomogram's axes, level. The offset found is the truth's plus the slab's own
    # tilt about Y (the angle of its normal from Z in the XZ plane): 0.7° + 1.0°. Measured error 0.000°.
    normal = np.array(truth["specimen"]["slab_normal"])
    levelled_offset = truth["tilt_offset_deg"] + np.rad2deg(np.arctan2(normal[0], normal[2]))
    nominal = np.array([r["nominal_tilt_deg"] for r in sorted(truth["tilts"], key=lambda r: r["acquisition_order"])])
    assert abs(np.mean(model.tilt_deg - nominal) - levelled_offset) < 0.1  # floor 0.3°


@pytest.mark.slow
def test_coarse_alignment_on_small_is_subpixel(small_runs):
    truth, project = small_runs["truth"], small_runs["project"]
    err = shift_errors(aligned_model(project, small_runs["coarse"]), truth)
    print(f"coarse alignment on small: median {np.median(err):.2f} px, max {err.max():.2f} px")
    assert np.median(err) < 0.3 and err.max() < 1.0  # measured 0.10 / 0.50 px (chain alone: 0.66 / 1.78)


@pytest.mark.slow
def test_patch_tracking_on_small_meets_the_issue_floor(small_runs):
    truth, project = small_runs["truth"], small_runs["project"]
    model, true = aligned_model(project, small_runs["patches"]), truth_model(truth)
    px = truth["pixel_size_A"] * BINNING
    err = rms(reprojection_difference(model, true, specimen_points(truth), remove_tilt_offset=True)) / px
    print(f"patch tracking on small: {err:.3f} px RMS at binning {BINNING}")
    assert err < 1.2  # issue floor 1.5 px; measured 0.20 px by layer tracks (patch tracks: 0.92 px)


@pytest.mark.slow
def test_patch_tracking_without_gold_meets_the_issue_floor(small_runs):
    """Protein only (the beads painted out), seeded by the coarse alignment: patch correlations of 0.1–0.3, so
    a low acceptance score, tracks cut into 16-view pieces and the tilt axis kept from the input."""
    truth, bare = small_runs["truth"], small_runs["bare"]
    model, true = aligned_model(bare, small_runs["bare_patches"]), truth_model(truth)
    px = truth["pixel_size_A"] * BINNING
    err = rms(reprojection_difference(model, true, specimen_points(truth), remove_tilt_offset=True)) / px
    print(f"patch tracking without gold on small: {err:.3f} px RMS at binning {BINNING}")
    assert err < 1.2  # issue floor 1.5 px; measured 0.24 px by layer tracks (patch tracks: 0.75 px)


@pytest.mark.slow
def test_coarse_alignment_without_gold_is_subpixel(small_runs):
    # Protein only (the beads painted out): the stretched-correlation chain alone drifts to 2.9 px
    # at the ends; projection matching brings every view within a pixel.
    err = shift_errors(aligned_model(small_runs["bare"], small_runs["bare_coarse"]), small_runs["truth"])
    print(f"coarse alignment without gold: median {np.median(err):.2f} px, max {err.max():.2f} px")
    assert np.median(err) < 0.5 and err.max() < 1.2  # measured 0.30 / 0.69 px
