"""Marker-free alignment against the simulator's truth on a bead-free, crowded cell-like slab (issue 16).

The `small` preset's specimen without gold (ribosomes, apoferritin, a vesicle and 300 crowding blobs in
1100 Å of ice tilted by 2°), simulated at 6 Å/px on 512² (the field of `small`), one frame per tilt: shot
noise and a fresh amorphous-ice texture in every tilt (uncorrelated between tilts), a tilt offset of 0.8°
hidden from the nominal tilts. The methods are given a tilt axis 1.5° off the acquisition's (about 1.35°
off the truth's mean ZRot) and align at binning 2 (12 Å/px). Errors are in pixels of the simulated
images (6 Å), after removing the free gauge (a 3D translation; a common rotation about the tilt axis).
The tilt offset is compared with the one that levels the slab: the truth's 0.8° plus the slab's own tilt
about the tilt axis (1.0°).
"""

from __future__ import annotations

import numpy as np
import pytest

from tomoforge.methods.align.coarse import coarse_alignment
from tomoforge.methods.align.consensus import point_grid
from tomoforge.methods.align.patches import PatchAlignmentSettings, PatchTrackingSettings, patch_alignment
from tomoforge.methods.align.projection_model import ProjectionModel, reprojection_difference
from tomoforge.methods.binning import bin_images

BINNING = 2
AXIS_ERROR_DEG = 1.5
OVERRIDES = {
    "detector.image_size": [512, 512],
    "detector.pixel_size_A": 6.0,
    "acquisition.frames_per_tilt": 1,
    "acquisition.tilt_offset_deg": 0.8,
    "detector.xrays_per_frame": 0.0,
    "specimen.fiducials.count_per_surface": 0,
    "specimen.background_count": 300,
    "output.tomogram_binning": 2,
}


@pytest.fixture(scope="module")
def bead_free(tmp_path_factory, test_data):
    """(binned images, nominal tilts, true model, levelled offset, pixel size of the simulated images)."""
    from tomoforge.io.movies import read_movie
    from tomoforge.io.mrc import read_mrc
    from tomoforge.simulate import simulate
    from tomoforge.simulate.accuracy import slab_tilt_about_y_deg, true_projection_model

    sim = simulate(
        tmp_path_factory.mktemp("bead_free"),
        preset="small",
        seed=3,
        overrides={"data_root": str(test_data), **OVERRIDES},
        progress=False,
    )
    ts = sim.tilt_series[0]
    truth = ts.truth
    gain = read_mrc(sim.gain).astype(np.float32)
    images = np.stack([read_movie(m).sum(axis=0) * gain for m in ts.movies]).astype(np.float32)
    nominal = np.array([r["nominal_tilt_deg"] for r in sorted(truth["tilts"], key=lambda r: r["acquisition_order"])])
    levelled = truth["tilt_offset_deg"] + slab_tilt_about_y_deg(truth)
    return bin_images(images, BINNING).numpy(), nominal, true_projection_model(truth), levelled, truth["pixel_size_A"]


@pytest.fixture(scope="module")
def aligned(bead_free):
    images, nominal, true, _, px = bead_free
    axis = 85.0 + AXIS_ERROR_DEG
    coarse = coarse_alignment(images, nominal, axis, high_cut_px=40.0 / (px * BINNING))
    binned = px * BINNING
    settings = PatchAlignmentSettings(
        tracking=PatchTrackingSettings(
            patch_px=max(16, int(round(500 / binned / 2)) * 2),
            spacing_px=250 / binned,
            high_cut_px=40 / binned,
            min_score=0.15,
        ),
        rotation="fixed",
        contour_views=16,
    )
    sol, _ = patch_alignment(images, nominal, coarse.tilt_axis_deg, binned, coarse.shifts_px, settings=settings)
    return coarse, sol


def per_view_error_px(model: ProjectionModel, true: ProjectionModel, px: float) -> np.ndarray:
    """(n,) RMS over a 5 × 5 × 3 grid of specimen points (±400 Å in height) of where the two models put them,
    pixels of the simulated images, the free translation and tilt offset removed."""
    d = reprojection_difference(model, true, point_grid(0.35 * 512 * px, 400.0), remove_tilt_offset=True) / px
    return np.sqrt(np.mean(np.sum(d**2, axis=-1), axis=1))


def test_coarse_alignment_of_a_bead_free_slab_finds_shifts_axis_and_offset(bead_free, aligned):
    images, nominal, true, levelled, px = bead_free
    coarse, _ = aligned
    a = true.matrices()
    errors = []
    for shifts, limit in ((coarse.chain_shifts_px, 6.0), (coarse.shifts_px, 0.6)):
        e = shifts * BINNING - true.shift_A / px
        t, *_ = np.linalg.lstsq(a.reshape(-1, 3), e.reshape(-1), rcond=None)
        err = np.linalg.norm(e - a @ t, axis=1)
        errors.append(err)
        # issue floor 3 px; measured: chain 2.9 px RMS (worst 8.3), refined 0.19 px RMS (worst 0.54)
        assert np.sqrt(np.mean(err**2)) < limit, np.round(err, 2)
    # projection matching reduces the error against the truth, not only its own residual (issue 16)
    assert np.sqrt(np.mean(errors[1] ** 2)) < 0.25 * np.sqrt(np.mean(errors[0] ** 2))
    assert errors[1].max() < 0.25 * errors[0].max()
    # the chain's drift as coarse_alignment reports it is the chain's error (both measured against the same
    # gauge-free positions): within a pixel of it at every view
    assert coarse.chain_drift_px is not None
    assert np.abs(coarse.chain_drift_px * BINNING - errors[0]).max() < 1.0
    assert coarse.tilt_axis_deg is not None
    assert abs(coarse.tilt_axis_deg - true.z_rot_deg.mean()) < 0.15  # floor 0.3°; measured 0.007° (given 1.35° off)
    assert abs(coarse.tilt_offset_deg - levelled) < 0.1  # floor 0.3°; measured 0.000°
    assert 700 < coarse.thickness_px * BINNING * px < 1300  # the slab is 1100 Å (measured 1008 Å)
    assert coarse.view_residual_px is not None and len(coarse.view_residual_px) == len(nominal)


def test_patch_tracking_of_a_bead_free_slab_meets_the_issue_floors(bead_free, aligned):
    images, nominal, true, levelled, px = bead_free
    _, sol = aligned
    err = per_view_error_px(sol.model, true, px)
    print(f"patch tracking, bead-free slab: {np.sqrt(np.mean(err**2)):.2f} px RMS, worst {err.max():.2f} px")
    assert np.sqrt(np.mean(err**2)) < 0.6 and err.max() < 1.5  # floors 1.0 / 3 px; measured 0.31 / 0.78 px
    assert abs(sol.tilt_axis_deg - true.z_rot_deg.mean()) < 0.15  # floor 0.3°; measured 0.003°
    assert abs(sol.tilt_offset_deg - levelled) < 0.1  # floor 0.3°; measured 0.000°
    assert sol.view_matching_px is not None and sol.view_matching_px.shape == (len(nominal),)
