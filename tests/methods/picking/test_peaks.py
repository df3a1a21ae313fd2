"""Peak extraction: the false-positive threshold (normal tail), greedy suppression, count, edges and beads."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from tomoforge.methods.picking.peaks import (
    PeakError,
    false_positive_threshold,
    find_peaks,
    non_maximum_suppression,
    subvoxel_positions,
)


def test_threshold_is_the_normal_tail() -> None:
    # F false positives among V·R normal scores of SD σ: the score with tail probability F / (V R)
    sd, v, r = 0.05, 200**3, 15000
    assert false_positive_threshold(sd, v, r, 1.0) == pytest.approx(sd * norm.isf(1.0 / (v * r)), rel=1e-9)
    assert false_positive_threshold(sd, v, r, 100.0) < false_positive_threshold(sd, v, r, 1.0)
    with pytest.raises(PeakError, match="false_positives 0"):
        false_positive_threshold(sd, v, r, 0.0)


def test_threshold_counts_false_positives_in_noise() -> None:
    # 2,000,000 normal scores, 20 false positives accepted: about 20 exceed the threshold
    rng = np.random.default_rng(0)
    scores = rng.normal(scale=0.1, size=2_000_000)
    threshold = false_positive_threshold(float(scores.std()), len(scores), 1, 20.0)
    assert 8 <= int((scores > threshold).sum()) <= 35


def test_greedy_suppression_keeps_the_better_of_close_peaks() -> None:
    # a chain a > b > c, 4 apart, minimum distance 5: b goes (near a), so c stays (b was dropped)
    pos = np.array([[0.0, 0, 0], [4, 0, 0], [8, 0, 0], [30, 0, 0]])
    values = np.array([0.9, 0.8, 0.7, 0.1])
    assert sorted(non_maximum_suppression(pos, values, 5.0).tolist()) == [0, 2, 3]
    assert sorted(non_maximum_suppression(pos, values, 3.0).tolist()) == [0, 1, 2, 3]


def test_find_peaks_with_exclusions() -> None:
    scores = np.zeros((30, 30, 30), dtype=np.float32)
    peaks = {
        (15, 15, 15): 0.9,
        (15, 15, 19): 0.8,
        (15, 5, 25): 0.7,
        (2, 15, 15): 0.95,
        (20, 22, 8): 0.6,
        (8, 8, 8): 0.2,
    }
    for p, v in peaks.items():
        scores[p] = v
    found = find_peaks(scores, threshold=0.5, min_distance_px=6, edge_px=4)
    # (2, 15, 15) is near the edge, (15, 15, 19) within 6 of a better one, (8, 8, 8) below the threshold
    assert [tuple(p) for p in found.positions_zyx] == [(15, 15, 15), (15, 5, 25), (20, 22, 8)]
    np.testing.assert_allclose(found.scores, [0.9, 0.7, 0.6])
    bead = np.array([[15.0, 6.0, 24.0]])
    no_gold = find_peaks(scores, threshold=0.5, min_distance_px=6, edge_px=4, exclude_zyx_px=bead, exclude_radius_px=3)
    assert [tuple(p) for p in no_gold.positions_zyx] == [(15, 15, 15), (20, 22, 8)]
    top = find_peaks(scores, threshold=0.5, min_distance_px=6, edge_px=4, max_count=1)
    assert [tuple(p) for p in top.positions_zyx] == [(15, 15, 15)]


def test_subvoxel_refinement_finds_a_parabolas_vertex() -> None:
    # a paraboloid peaked at (10.3, 7.0, 12.8): its vertex is exact; a peak on a face stays put
    z, y, x = np.meshgrid(np.arange(20), np.arange(16), np.arange(24), indexing="ij")
    scores = 1.0 - 0.01 * ((z - 10.3) ** 2 + (y - 7.0) ** 2 + 2 * (x - 12.8) ** 2)
    np.testing.assert_allclose(subvoxel_positions(scores, np.array([[10, 7, 13]])), [[10.3, 7.0, 12.8]], atol=1e-9)
    np.testing.assert_allclose(subvoxel_positions(scores, np.array([[0, 7, 13]]))[0, 0], 0.0)


def test_single_rotation_statistics_are_those_of_every_rotations_scores() -> None:
    # the moments gathered during the search (every 7th voxel of the mask's part of each tile, every rotation
    # here) are those of the score maps of each rotation searched alone, over the mask's voxels
    from tests.methods.picking import synthetic
    from tomoforge.methods.picking.angles import angular_sampling
    from tomoforge.methods.picking.template_matching import match_template

    rng = np.random.default_rng(3)
    volume = rng.normal(size=(24, 26, 28)).astype(np.float32)
    rotations = angular_sampling(60.0)[:5]
    where = np.zeros(volume.shape, bool)
    where[5:19, 5:21, 5:23] = True
    result = match_template(volume, synthetic.template(), rotations, statistics_mask=where, statistics_rotations=5)
    each = [match_template(volume, synthetic.template(), rotations[i : i + 1]).scores for i in range(5)]
    values = np.concatenate([s[where] for s in each])
    assert abs(result.rotation_score_mean - values.mean()) < 0.15 * values.std()  # a seventh of the voxels
    assert result.rotation_score_sd == pytest.approx(values.std(), rel=0.08)
    # the best-of-5 map is not centred on 0 (E max of 5 normals ≈ 1.16 σ): its SD alone misplaces the threshold
    assert result.scores[where].mean() > result.rotation_score_mean + 0.5 * result.rotation_score_sd
