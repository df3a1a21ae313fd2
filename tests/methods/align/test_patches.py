"""Patch tracking (fiducial-less alignment) against a synthetic specimen with a known projection model."""

import numpy as np
import pytest

from tests.methods.align.synthetic import render_beads, true_model
from tomoforge.methods.align.coarse import coarse_alignment
from tomoforge.methods.align.patches import (
    PatchAlignmentSettings,
    PatchTrackingSettings,
    patch_alignment,
    patch_grid,
    split_into_contours,
    track_patches,
)
from tomoforge.methods.align.projection_model import reprojection_difference, rms

PX = 8.0
TILTS = np.arange(-60, 61, 3.0)


def test_patch_grid_stays_inside_the_image():
    grid = patch_grid((256, 256), 64, 32, border_px=16)
    assert len(grid) == 25 and np.all(np.abs(grid) <= 128 - 32 - 16)


def test_patch_tracking_meets_the_issue_floor():
    # A 200 Å slab of 400 dense blobs (no fiducials), random-walk shifts, tilt offset 0.7°, axis drift 0.3°.
    rng = np.random.default_rng(7)
    truth = true_model(rng, TILTS, shift_sigma_A=30.0)
    points = np.c_[rng.uniform(-1400, 1400, (400, 2)), rng.uniform(-100, 100, 400)]
    images = render_beads(truth, points, (256, 256), PX, 50.0, noise_sd=0.3, rng=rng)
    shifts = coarse_alignment(images, TILTS, 85.0, cumulative=True).shifts_px
    settings = PatchAlignmentSettings(tracking=PatchTrackingSettings(patch_px=64, spacing_px=32))
    sol, tracks = patch_alignment(images, TILTS, 85.0, PX, shifts, settings=settings)
    assert tracks.shape[1] >= 20 and np.isfinite(tracks[..., 0]).mean() > 0.9
    err = rms(reprojection_difference(sol.model, truth, points)) / PX
    assert err < 1.5, err  # issue floor without fiducials (measured 1.03 px, tilt fixed or grouped)
    assert abs(sol.tilt_axis_deg - truth.z_rot_deg.mean()) < 0.5 and sol.rms_px < 0.6


def test_a_featureless_view_is_a_gap_not_a_wrong_position():
    rng = np.random.default_rng(8)
    truth = true_model(rng, TILTS[:9], shift_sigma_A=0.0, drift_deg=0.0)
    points = np.c_[rng.uniform(-700, 700, (120, 2)), rng.uniform(-50, 50, 120)]
    images = render_beads(truth, points, (128, 128), PX, 50.0, noise_sd=0.05, rng=rng)
    images[0] = rng.normal(0, 1, images[0].shape)  # the last view of one direction: pure noise
    settings = PatchTrackingSettings(patch_px=48, spacing_px=32)
    tracks, scores = track_patches(images, TILTS[:9], 85.0, truth.shift_A / PX, settings=settings)
    assert np.all(np.isnan(tracks[0])) and np.all(scores[0] < 0.3)
    assert np.isfinite(tracks[1:]).all()


def test_split_into_contours_cuts_tracks_in_tilt_order_with_overlap():
    tilts = np.array([0.0, 3.0, -3.0, 6.0, -6.0, 9.0, -9.0, 12.0, -12.0])  # dose-symmetric acquisition order
    tracks = np.arange(9 * 2 * 2, dtype=float).reshape(9, 2, 2)
    tracks[7, 1] = np.nan  # patch 1 not found at +12°
    pieces = split_into_contours(tracks, tilts, length=4, overlap=1)
    # tilt order −12 … +12 cut as [0:4], [3:7], [6:9]; patch 1's last piece keeps 2 views only and is dropped
    assert pieces.shape == (9, 5, 2)
    seen = [sorted(tilts[np.isfinite(pieces[:, j, 0])].tolist()) for j in range(5)]
    assert seen == [[-12, -9, -6, -3], [-3, 0, 3, 6], [6, 9, 12], [-12, -9, -6, -3], [-3, 0, 3, 6]]
    found = np.isfinite(pieces[:, 1, 0])
    assert np.array_equal(pieces[found, 1], tracks[found, 0])  # positions copied unchanged
    with pytest.raises(ValueError, match="overlapping"):
        split_into_contours(tracks, tilts, length=4, overlap=4)
