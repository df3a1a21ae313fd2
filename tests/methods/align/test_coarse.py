"""Coarse alignment (stretched cross-correlation) and the interpolated stack, on synthetic views."""
import numpy as np
import pytest

from tomoforge.methods.align.coarse import coarse_align
from tomoforge.methods.align.projection_model import ProjectionModel, rotation_matrices
from tomoforge.methods.align.transform import aligned_stack, warp_images
from tests.methods.align.synthetic import render_beads, true_model

PX = 8.0
TILTS = np.arange(-60, 61, 3.0)


def gauge_free_error(shifts_px, truth: ProjectionModel):
    """Per-view error (px) after removing the best 3D translation of the specimen centre."""
    a = rotation_matrices(truth.tilt_deg, truth.z_rot_deg)[:, :2]
    e = shifts_px - truth.shift_A / PX
    t, *_ = np.linalg.lstsq(a.reshape(-1, 3), e.reshape(-1), rcond=None)
    return np.linalg.norm(e - a @ t, axis=1)


def test_cumulative_stretched_correlation_recovers_random_shifts():
    rng = np.random.default_rng(5)
    truth = true_model(rng, TILTS, shift_sigma_A=30.0, drift_deg=0.0)
    points = np.c_[rng.uniform(-1400, 1400, (60, 2)), rng.uniform(-300, 300, 60)]
    images = render_beads(truth, points, (256, 256), PX, 60.0, noise_sd=0.2, rng=rng)
    shifts = coarse_align(images, TILTS, 85.0, cumulative=True)
    err = gauge_free_error(shifts, truth)
    assert np.median(err) < 0.8 and err.max() < 1.5, np.round(err, 2)


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
