"""Point groups: closed under products, the right orders, the right axes, and orientation errors modulo the group."""

import numpy as np
import pytest

from tomoforge.methods.rotations import random_rotations, rotation_about_axis
from tomoforge.methods.symmetry import (
    SymmetryError,
    group_order,
    parse_symmetry,
    rotation_angle_deg,
    symmetric_angle_deg,
    symmetry_operators,
)

ORDERS = {"C1": 1, "C2": 2, "C6": 6, "C7": 7, "D1": 2, "D2": 4, "D6": 12, "T": 12, "O": 24, "I": 60}


def _index(ops: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """For each candidate, the distance to the nearest operator."""
    return np.abs(candidates[:, None] - ops[None]).reshape(len(candidates), len(ops), 9).max(-1).min(-1)


@pytest.mark.parametrize("name", list(ORDERS))
def test_groups_are_closed_rotations_of_the_right_order(name):
    ops = symmetry_operators(name)
    assert len(ops) == ORDERS[name] == group_order(name)
    np.testing.assert_allclose(np.einsum("gba,gbc->gac", ops, ops), np.broadcast_to(np.eye(3), ops.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(ops), 1.0, atol=1e-12)
    np.testing.assert_allclose(ops[0], np.eye(3), atol=1e-12)
    products = np.einsum("gab,hbc->ghac", ops, ops).reshape(-1, 3, 3)
    assert _index(ops, products).max() < 1e-9  # every product is an operator
    assert _index(ops, np.transpose(ops, (0, 2, 1))).max() < 1e-9  # and every inverse
    distinct = np.unique(np.round(ops.reshape(len(ops), 9), 6), axis=0)
    assert len(distinct) == len(ops)


def test_axes_follow_the_stated_conventions():
    c6 = symmetry_operators("C6")
    np.testing.assert_allclose(c6 @ [0, 0, 1.0], np.tile([0, 0, 1.0], (6, 1)), atol=1e-12)  # z is the axis
    d3 = symmetry_operators("D3")
    assert _index(d3, rotation_about_axis(np.array([1.0, 0, 0]), 180.0)[None]).max() < 1e-12  # two-fold along x
    ico = symmetry_operators("I")
    angles = rotation_angle_deg(ico)
    # 1 identity, 15 two-folds, 20 three-fold axes (40 rotations by ±120°), 6 five-fold axes (24 rotations)
    counts = {a: int(np.sum(np.isclose(angles, a))) for a in (0.0, 72.0, 120.0, 144.0, 180.0)}
    assert counts == {0.0: 1, 72.0: 12, 120.0: 20, 144.0: 12, 180.0: 15}
    five = rotation_about_axis(np.array([0.0, 1.0, (1 + 5**0.5) / 2]), 72.0)
    assert _index(ico, five[None]).max() < 1e-12
    octa = rotation_angle_deg(symmetry_operators("O"))
    assert int(np.sum(np.isclose(octa, 90.0))) == 6 and int(np.sum(np.isclose(octa, 180.0))) == 9


@pytest.mark.parametrize("name", ["C1", "C6", "D7", "T", "O", "I"])
def test_orientation_error_is_zero_for_a_symmetry_copy_and_the_angle_otherwise(name):
    rng = np.random.default_rng(3)
    true = random_rotations(50, rng)
    ops = symmetry_operators(name)
    copies = true @ ops[rng.integers(len(ops), size=50)]  # R·G places the symmetric particle identically
    assert symmetric_angle_deg(copies, true, name).max() < 1e-5
    small = np.stack([rotation_about_axis(rng.normal(size=3), 1.5) for _ in range(50)])
    np.testing.assert_allclose(symmetric_angle_deg(copies @ small, true, name), 1.5, atol=1e-5)


def test_names_parse_and_mistakes_name_the_value():
    assert parse_symmetry(" c6 ") == ("C", 6) and parse_symmetry("I") == ("I", 0)
    for bad in ("C0", "D", "X2", "I2", "C-1"):
        with pytest.raises(SymmetryError, match=repr(bad)):
            parse_symmetry(bad)
