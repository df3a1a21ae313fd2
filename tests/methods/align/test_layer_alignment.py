"""The two extrapolations of layer-track alignment against closed forms: the axis's secant (its slope bounded
where the rounds barely moved, issue 16's noisy second pass) and the shifts' limit (Aitken's Δ²)."""

from __future__ import annotations

import numpy as np
import pytest

from tomoforge.methods.align.layer_alignment import extrapolated_shifts
from tomoforge.methods.align.layer_tracks import RATE, secant_root
from tomoforge.methods.align.transform import rotation_2d


def test_the_secant_finds_the_fixed_point_of_a_linear_map():
    # each round moves the axis 40% of the way to 85°: the secant through two rounds lands on 85° exactly
    a0 = 84.4
    f0 = a0 + 0.4 * (85.0 - a0)
    f1 = f0 + 0.4 * (85.0 - f0)
    assert secant_root(a0, f0, f0, f1) == pytest.approx(85.0, abs=1e-9)
    # a round moving 10% (slope −0.1, outside [−1, −1/4]) is taken at −1/4: four times the last step
    g0, g1 = 0.1 * (85.0 - a0), 0.1 * (85.0 - a0 - 0.1 * (85.0 - a0))
    a1 = a0 + g0
    assert secant_root(a0, a0 + g0, a1, a1 + g1) == pytest.approx(a1 + 4 * g1, abs=1e-9)


def test_rounds_that_barely_move_take_the_typical_rate():
    # the second pass of benchmarks/RESULTS.md's seed 0 (truth 0): rounds +0.010 → −0.004 → −0.016; the
    # unbounded secant (slope (g₁ − g₀)/(a₁ − a₀) = −0.14) goes to −0.088°
    a0, f0, a1, f1 = 0.010, -0.004, -0.004, -0.016
    unbounded = a1 - (f1 - a1) * (a1 - a0) / ((f1 - a1) - (f0 - a0))
    assert unbounded == pytest.approx(-0.088, abs=0.001)
    root = secant_root(a0, f0, a1, f1)
    assert root == pytest.approx(a1 + (f1 - a1) / RATE, abs=1e-12)  # −0.034°
    assert abs(root) < 0.05


def translation(tilts_deg: np.ndarray, axis_deg: float, xyz: tuple[float, float, float]) -> np.ndarray:
    """(n, 2) image shifts that a 3D translation (X, Y, Z) px of the specimen makes."""
    b = np.deg2rad(tilts_deg)
    frame = np.c_[xyz[0] * np.cos(b) + xyz[2] * np.sin(b), np.full(len(b), xyz[1])]
    return frame @ rotation_2d(axis_deg).T


def test_the_shifts_limit_of_rounds_that_remove_a_fixed_part_of_the_error():
    tilts, axis = np.arange(-60.0, 61.0, 3.0), 85.0
    rng = np.random.default_rng(0)
    truth = rng.normal(0.0, 5.0, (len(tilts), 2))
    error = np.c_[3.0 * (tilts / 60.0) ** 2 - 1.0, 2.0 * np.sin(np.deg2rad(3 * tilts))]  # smooth, not a translation
    # each round removes 18% of the error (as measured on a 192² series), each fit with its own gauge
    steps = [truth + 0.82**k * error + translation(tilts, axis, tuple(rng.normal(0.0, 2.0, 3))) for k in range(3)]
    found = extrapolated_shifts(steps, tilts, axis)
    residual = found - truth
    gauge = translation(tilts, axis, (1.0, 0.0, 0.0)), translation(tilts, axis, (0.0, 1.0, 0.0))
    basis = np.stack([gauge[0].ravel(), gauge[1].ravel(), translation(tilts, axis, (0.0, 0.0, 1.0)).ravel()], 1)
    left = residual.ravel() - basis @ np.linalg.lstsq(basis, residual.ravel(), rcond=None)[0]
    assert np.abs(left).max() < 1e-9  # the error gone, up to a 3D translation
    # moves of noise only (no common direction): the last round kept, no step beyond it of more than its noise
    noisy = [truth + rng.normal(0.0, 0.05, truth.shape) for _ in range(3)]
    kept = extrapolated_shifts(noisy, tilts, axis)
    assert np.abs(kept - noisy[2]).max() < 0.2
