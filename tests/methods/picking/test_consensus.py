"""Consensus of two pickers against simulator-style truth, and orientations averaged modulo symmetry."""

from __future__ import annotations

import numpy as np
import pytest

from tomoforge.methods.picking.consensus import mean_rotations, merge_picks
from tomoforge.methods.picking.duplicates import remove_duplicates
from tomoforge.methods.rotations import random_rotations, rotation_about_x, rotation_about_z
from tomoforge.methods.symmetry import symmetric_angle_deg
from tomoforge.simulate.accuracy import match_picks


def truth_and_two_pickers(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """300 true particles ≥ 60 Å apart in a 2000 × 2000 × 400 Å box; each picker finds all of them (5 Å noise)
    plus 80 false positives of its own; returns (truth, picks a, picks b, shared true count)."""
    candidates = rng.uniform([0, 0, 0], [2000, 2000, 400], (900, 3))
    truth = candidates[remove_duplicates(candidates, 60.0)][:300]

    def picker() -> np.ndarray:
        found = truth + rng.normal(0, 5.0, truth.shape)
        false = rng.uniform([0, 0, 0], [2000, 2000, 400], (80, 3))
        picks = np.concatenate([found, false])
        return picks[rng.permutation(len(picks))]

    return truth, picker(), picker(), len(truth)


def test_consensus_of_two_pickers_keeps_the_true_particles_and_drops_the_other_false_ones():
    rng = np.random.default_rng(4)
    truth, a, b, n_true = truth_and_two_pickers(rng)
    merged = merge_picks([a, b], 25.0)
    both = merged.votes == 2
    match = match_picks(merged.positions_A[both], truth, 25.0)
    assert len(match.pick_index) >= 0.99 * n_true  # the common true particles are kept
    false_kept = int(both.sum()) - len(match.pick_index)
    assert false_kept <= 0.1 * 160  # ≥ 90 % of the 160 non-shared false positives dropped
    # two picks with 5 Å noise per axis averaged: σ = 3.54 Å per axis, mean 3D error σ·√(8/π) = 5.64 Å
    # (a single pick: 7.98 Å)
    assert 5.0 < match.mean_position_error_A < 6.3
    assert match_picks(a, truth, 25.0).mean_position_error_A > 7.0
    assert merged.votes.sum() == len(a) + len(b)  # every pick in exactly one particle
    any_match = match_picks(merged.positions_A, truth, 25.0)
    assert len(any_match.pick_index) >= 0.99 * n_true


def test_picks_of_different_tomograms_never_merge():
    a = np.array([[0.0, 0, 0], [100, 0, 0]])
    b = np.array([[1.0, 0, 0], [101, 0, 0]])
    merged = merge_picks([a, b], 10.0, groups=[np.array([0, 1]), np.array([1, 1])])
    assert sorted(merged.votes.tolist()) == [1, 1, 2]


def test_the_chordal_mean_of_symmetric_rotations_is_the_middle_one():
    rng = np.random.default_rng(1)
    truth = random_rotations(50, rng)
    plus, minus = truth @ rotation_about_x(6.0), truth @ rotation_about_x(-6.0)
    mean = mean_rotations(np.stack([plus, minus], 1), np.ones((50, 2), bool))
    assert np.abs(mean - truth).max() < 1e-9


@pytest.mark.parametrize("symmetry, operator", [("C4", rotation_about_z(90.0)), ("D2", rotation_about_x(180.0))])
def test_orientations_differing_by_a_symmetry_operator_are_averaged_as_one(symmetry, operator):
    rng = np.random.default_rng(2)
    truth = random_rotations(40, rng)
    a = truth @ rotation_about_x(4.0)
    b = truth @ rotation_about_x(-4.0) @ operator  # R·G places the same symmetric particle as R
    rotations, present = np.stack([a, b], 1), np.ones((40, 2), bool)
    with_symmetry = mean_rotations(rotations, present, symmetry=symmetry)
    assert symmetric_angle_deg(with_symmetry, truth, symmetry).max() < 1e-4  # arccos near 1: ~1e-6°
    naive = mean_rotations(rotations, present, symmetry="C1")
    assert symmetric_angle_deg(naive, truth, symmetry).min() > 20.0
