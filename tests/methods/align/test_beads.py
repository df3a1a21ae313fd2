"""Bead detection and tracking on synthetic images with a known projection model."""

import numpy as np
import pytest

from tests.methods.align.synthetic import bead_points, render_beads, true_model
from tomoforge.methods.align.beads import bead_score, detect_beads, fill_gaps, track_beads
from tomoforge.methods.align.projection_model import ProjectionModel, reprojection_difference, rms
from tomoforge.methods.align.solve import solve_fiducial_alignment

PX = 8.0
TILTS = np.arange(-60, 61, 3.0)


def nearest(found, true):
    d = np.linalg.norm(found[:, None] - true[None], axis=-1)
    return d.min(axis=1), d.argmin(axis=1)


def test_detection_finds_every_bead_at_subpixel_accuracy():
    rng = np.random.default_rng(4)
    points = np.c_[rng.uniform(-1200, 1200, (10, 2)), np.zeros(10)]
    model = ProjectionModel([0.0], [0.0], [[13.3, -7.1]])
    image = render_beads(model, points, (384, 384), PX, 100.0, noise_sd=0.3, rng=rng)[0]
    true = model.project_px(points, PX)[0]
    keep = np.linalg.norm(true[:, None] - true[None], axis=-1)
    np.fill_diagonal(keep, np.inf)
    xy, heights = detect_beads(bead_score(image, 100 / PX).numpy()[0], 100 / PX, threshold_sd=6.0)
    dist, _ = nearest(true, xy)
    assert len(xy) == len(true) and np.all(dist < 0.6), (len(xy), len(true), dist)
    isolated = keep.min(axis=1) > 3 * 100 / PX  # a neighbour's fringe pulls the peak a little
    assert np.sqrt(np.mean(dist[isolated] ** 2)) < 0.3
    assert np.all(heights > 10)


@pytest.fixture(scope="module")
def series():
    rng = np.random.default_rng(0)
    truth = true_model(rng, TILTS, shift_sigma_A=30)
    points = bead_points(rng, 14, 1400, 900)
    images = render_beads(truth, points, (384, 384), PX, 100, 0.5, rng, 0.3)
    return truth, points, images


def test_tracking_then_least_squares_meets_the_issue_floors(series):
    truth, points, images = series
    track = track_beads(images, TILTS, 86.0, 100 / PX)
    true_uv = truth.project_px(points, PX)
    dist, idx = nearest(track[20], true_uv[20])
    assert len(track[0]) >= 10 and np.all(dist < 0.8)
    # Most positions follow the right bead: within 1.5 px of the truth.
    err = np.linalg.norm(track - true_uv[:, idx], axis=-1)
    assert np.mean(err[np.isfinite(err)] < 1.5) > 0.95
    assert np.isfinite(track[..., 0]).mean() > 0.8
    sol = solve_fiducial_alignment(track, TILTS, 86.0, PX, rotation="grouped")
    assert rms(reprojection_difference(sol.model, truth, points)) / PX < 0.5
    assert abs(sol.tilt_axis_deg - truth.z_rot_deg.mean()) < 0.3
    assert abs(sol.tilt_offset_deg - 0.7) < 0.3
    # Gap filling from the model's predictions adds observations, and the filled track stays on the right beads:
    # measured 98.2 % of the positions observed, 97.7 % of them within 1.5 px (the sphere template: 98.0 %,
    # 97.5 %). The tracker with the learnt template leaves fewer gaps (7.3 % against 14.8 %), the hard ones: of
    # the 27 filled, 85 % are right (of the sphere's 63, 94 %).
    filled = fill_gaps(track, sol.gap_free_px(PX), images, 100 / PX)
    new = np.isfinite(filled[..., 0]) & ~np.isfinite(track[..., 0])
    assert new.sum() > 0
    assert np.mean(np.linalg.norm(filled[new] - true_uv[:, idx][new], axis=-1) < 1.5) > 0.8
    err = np.linalg.norm(filled - true_uv[:, idx], axis=-1)
    assert np.isfinite(err).mean() > 0.97 and np.mean(err[np.isfinite(err)] < 1.5) > 0.97


def test_tracking_keeps_the_beads_of_both_surfaces_when_their_parallax_exceeds_the_search():
    # The tiny demo's geometry: beads 100 Å wide on two surfaces ~500 Å apart, 12 Å/px, 6° steps. From 0° to
    # 6° the surfaces part by 4.4 px, more than the search radius (half a bead, 4.2 px): one common
    # translation suits one surface only, and every bead of the other was lost at the first step (which
    # surface: the vote's choice, decided by the noise; the demo lost 5 of 12 beads and levelled wrongly).
    px, tilts = 12.0, np.arange(-60, 61, 6.0)
    lost = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        truth = true_model(rng, tilts, shift_sigma_A=5.0)
        points = bead_points(rng, 12, 1200, 520)
        images = render_beads(truth, points, (256, 256), px, 100, 0.3, rng)
        track = track_beads(images, tilts, 85.0, 100 / px, truth.shift_A / px)
        views = np.isfinite(track[..., 0]).sum(axis=0)
        lost.append(int((views < 0.8 * len(tilts)).sum()))
        true_uv = truth.project_px(points, px)
        _, idx = nearest(track[10], true_uv[10])
        err = np.linalg.norm(track - true_uv[:, idx], axis=-1)
        assert np.mean(err[np.isfinite(err)] < 1.5) > 0.95  # on the right bead
    assert lost == [0, 0, 0], lost
