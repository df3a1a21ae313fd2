"""Angular sampling: the count of a step, its covering radius, symmetry and cones, Crowther's step."""

from __future__ import annotations

import numpy as np
import pytest

from tomoforge.methods.picking.angles import (
    AngularSamplingError,
    angular_sampling,
    covering_radius_deg,
    crowther_step_deg,
    rotation_count,
)
from tomoforge.methods.rotations import random_rotations
from tomoforge.methods.symmetry import group_order, symmetric_angle_deg


@pytest.fixture(scope="module")
def probes() -> np.ndarray:
    return random_rotations(2000, np.random.default_rng(3))


def test_count_is_an_euler_grids() -> None:
    # 8π²/Δ³: 10° → 14,852 rotations (an Euler grid of 36 × 36 × 18 × 2/π ≈ 14,851)
    assert rotation_count(10.0) == int(np.ceil(8 * np.pi**2 / np.deg2rad(10.0) ** 3)) == 14852
    assert len(angular_sampling(30.0)) == rotation_count(30.0) == 551


@pytest.mark.parametrize("step", [30.0, 20.0])
def test_covering_radius_matches_the_step(step: float, probes: np.ndarray) -> None:
    radius = covering_radius_deg(angular_sampling(step), probes)
    assert 0.6 * step < radius <= step


def test_symmetry_divides_the_search_and_keeps_the_cover(probes: np.ndarray) -> None:
    full = angular_sampling(20.0)
    for sym in ("C6", "D2", "O"):
        reduced = angular_sampling(20.0, symmetry=sym)
        assert len(reduced) == pytest.approx(len(full) / group_order(sym), rel=0.2)
        assert covering_radius_deg(reduced, probes, sym) <= 1.15 * 20.0
        # every reduced rotation is its own class's closest to the identity: no two are equivalent
        angles = symmetric_angle_deg(reduced[:50, None], reduced[None, :50], sym)
        np.fill_diagonal(angles, 180.0)
        assert angles.min() > 1.0


def test_cone_around_normals() -> None:
    normal = np.array([1.0, 1.0, 0.0]) / np.sqrt(2)
    rot = angular_sampling(15.0, normals_xyz=normal[None], cone_deg=20.0)
    cos = rot[:, :, 2] @ normal
    assert np.all(cos >= np.cos(np.deg2rad(20.0)) - 1e-12)
    # a cone of 20° holds (1 − cos 20°) / 2 of the sphere of directions: about 3 % of the rotations
    assert len(rot) / rotation_count(15.0) == pytest.approx((1 - np.cos(np.deg2rad(20.0))) / 2, rel=0.25)


def test_crowther_step() -> None:
    # a 250 Å ribosome at 20 Å: 20 / 250 rad = 4.58°
    assert crowther_step_deg(250.0, 20.0) == pytest.approx(np.rad2deg(0.08))
    with pytest.raises(AngularSamplingError, match="diameter_A"):
        crowther_step_deg(0.0, 20.0)
    with pytest.raises(AngularSamplingError, match="step_deg 0.1"):
        angular_sampling(0.1)
