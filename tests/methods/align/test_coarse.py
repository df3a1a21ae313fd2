"""Coarse alignment (stretched cross-correlation, then projection matching) and the interpolated
stack, on synthetic views of beads with a known projection model."""

import numpy as np
import pytest

from tests.methods.align.synthetic import bead_points, render_beads, true_model
from tomoforge.methods.align.coarse import coarse_alignment
from tomoforge.methods.align.projection_model import ProjectionModel, rotation_matrices
from tomoforge.methods.align.reproject import specimen_slab
from tomoforge.methods.align.transform import aligned_stack, warp_images

PX = 8.0
TILTS = np.arange(-60, 61, 3.0)


def gauge_free_error(shifts_px, truth: ProjectionModel, translation: bool = False):
    """Per-view error (px) after removing the best 3D translation of the specimen centre (and that
    translation, px, with ``translation``)."""
    a = rotation_matrices(truth.tilt_deg, truth.z_rot_deg)[:, :2]
    e = shifts_px - truth.shift_A / PX
    t, *_ = np.linalg.lstsq(a.reshape(-1, 3), e.reshape(-1), rcond=None)
    err = np.linalg.norm(e - a @ t, axis=1)
    return (err, t) if translation else err


def test_cumulative_stretched_correlation_recovers_random_shifts():
    rng = np.random.default_rng(5)
    truth = true_model(rng, TILTS, shift_sigma_A=30.0, drift_deg=0.0)
    points = np.c_[rng.uniform(-1400, 1400, (60, 2)), rng.uniform(-300, 300, 60)]
    images = render_beads(truth, points, (256, 256), PX, 60.0, noise_sd=0.2, rng=rng)
    shifts = coarse_alignment(images, TILTS, 85.0, cumulative=True).shifts_px
    err = gauge_free_error(shifts, truth)
    assert np.median(err) < 0.8 and err.max() < 1.5, np.round(err, 2)


def test_the_chain_follows_shifts_far_from_the_image_centre():
    # Stage shifts drifting 110 px (of 256) to one side: each step searches about the previous
    # view's shift, not about the image centre.
    rng = np.random.default_rng(3)
    truth = true_model(rng, TILTS, shift_sigma_A=0.0, drift_deg=0.0, offset_deg=0.0)
    truth.shift_A[:] = np.c_[np.abs(TILTS) / 60 * 110 * PX, np.zeros(len(TILTS))]
    points = np.c_[rng.uniform(-1000, 1000, (80, 2)), np.zeros(80)]
    images = render_beads(truth, points, (256, 256), PX, 60.0, noise_sd=0.2, rng=rng)
    chain = coarse_alignment(images, TILTS, 85.0, refine_iterations=0).shifts_px
    assert np.abs(chain - truth.shift_A / PX).max() < 0.5  # measured 0.08 px


def test_projection_matching_removes_the_drift_of_beads_on_two_surfaces():
    # Gold on both surfaces of a 900 Å slab: neighbouring views disagree by the parallax of the
    # two layers, the chain locks onto one or the other and drifts; reprojections have no such bias.
    rng = np.random.default_rng(7)
    truth = true_model(rng, TILTS, shift_sigma_A=60.0, drift_deg=0.0)
    points = bead_points(rng, 40, 1300.0, 900.0)
    images = render_beads(truth, points, (256, 256), PX, 100.0, noise_sd=0.3, rng=rng)
    res = coarse_alignment(images, TILTS, 85.0)
    chain = gauge_free_error(res.chain_shifts_px, truth)
    refined, translation = gauge_free_error(res.shifts_px, truth, translation=True)
    # measured: chain median 1.09 px, max 2.68 px; refined median 0.18 px, max 0.66 px
    assert np.median(refined) < 0.35 and refined.max() < 1.2, np.round(refined, 2)
    assert np.median(refined) < 0.5 * np.median(chain)
    assert 900 < res.thickness_px * PX < 1250  # the beads' extent is 1000 Å (measured 1056)
    # the gauge: the lowest tilt at 0, the slab centre at the specimen's mid-plane (z = 0)
    assert np.allclose(res.shifts_px[np.argmin(np.abs(TILTS))], 0.0)
    assert abs(translation[2]) * PX < 40.0, translation * PX


def test_specimen_slab_is_the_extent_of_the_profile_peaks():
    z = np.arange(-100, 101, 1.0)
    variance = 1.0 + 10 * np.exp(-0.5 * ((z + 40) / 3) ** 2) + 8 * np.exp(-0.5 * ((z - 30) / 3) ** 2)
    centre, thickness = specimen_slab(z, variance)
    assert centre == pytest.approx(-5.0, abs=1.0) and thickness == pytest.approx(70 + 2 * 3 * 2.1, abs=3.0)
    assert specimen_slab(z, np.ones_like(z)) is None


def test_warp_and_aligned_stack_undo_a_known_shift_and_rotation():
    rng = np.random.default_rng(6)
    model = ProjectionModel([0.0], [30.0], [[5.0 * PX, -3.0 * PX]])
    points = np.c_[rng.uniform(-600, 600, (8, 2)), np.zeros(8)]
    raw = render_beads(model, points, (128, 128), PX, 80.0)
    aligned = aligned_stack(raw, [30.0], [[5.0, -3.0]]).numpy()
    # aligned frame: tilt axis vertical, specimen centre at the image centre
    expected = render_beads(ProjectionModel([0.0], [0.0], [[0.0, 0.0]]), points, (128, 128), PX, 80.0)
    inner = (slice(None), slice(20, -20), slice(20, -20))
    assert np.abs(aligned[inner] - expected[inner]).mean() < 0.02
    shifted = warp_images(raw[0], np.eye(2), [2.0, 1.0]).numpy()
    assert shifted[60:70, 60:70] == pytest.approx(raw[0, 61:71, 62:72], abs=1e-5)
