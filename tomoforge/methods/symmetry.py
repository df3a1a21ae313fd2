"""Point-group symmetry operators (Cn, Dn, T, O, I) as arrays of rotation matrices.

Conventions (active rotations on (x, y, z) vectors, as in ``rotations``):

- ``Cn``: rotations by 360°·k/n about z (order n);
- ``Dn``: Cn and the n two-fold axes in the x-y plane, the first along x (order 2n);
- ``T``: the tetrahedral rotations with two-folds along x, y, z and three-folds along (±1, ±1, ±1) (order 12);
- ``O``: the octahedral (cube) rotations, four-folds along x, y, z (order 24);
- ``I``: the icosahedral rotations with two-folds along x, y, z and five-folds along (0, ±1, ±φ) and
  their cyclic permutations (order 60).

A map M with symmetry G satisfies M(G x) = M(x) for every operator G, so a particle placed by R looks the
same placed by R·G: orientation errors are taken modulo the group (``symmetric_angle_deg``).
"""

from __future__ import annotations

import re

import numpy as np

from tomoforge.errors import UserError
from tomoforge.methods.rotations import rotation_about_axis, rotation_about_x, rotation_about_z

_NAME = re.compile(r"^(?:([CD])([1-9][0-9]*)|([TOI]))$")
GOLDEN = (1 + 5**0.5) / 2


class SymmetryError(UserError, ValueError):
    """A symmetry name that is not Cn, Dn (n ≥ 1), T, O or I."""


def parse_symmetry(name: str) -> tuple[str, int]:
    """('C' | 'D' | 'T' | 'O' | 'I', n) from a name such as 'C6', 'd7', 'O' (n = 0 for T, O, I)."""
    m = _NAME.match(str(name).strip().upper())
    if m is None:
        raise SymmetryError(f"symmetry {name!r}: must be Cn or Dn with n ≥ 1, T, O or I")
    if m.group(3):
        return m.group(3), 0
    return m.group(1), int(m.group(2))


def canonical_symmetry(name: str) -> str:
    """The name written the standard way: 'c6 ' → 'C6', 'i' → 'I'."""
    kind, n = parse_symmetry(name)
    return f"{kind}{n}" if n else kind


def group_order(name: str) -> int:
    """Number of operators of the point group: n, 2n, 12, 24 or 60."""
    kind, n = parse_symmetry(name)
    return {"C": n, "D": 2 * n, "T": 12, "O": 24, "I": 60}[kind]


def _closure(generators: list[np.ndarray], order: int) -> np.ndarray:
    """All products of ``generators`` (the group they generate), identity first; (order, 3, 3)."""
    elements = np.eye(3)[None]
    gens = np.stack(generators)
    while True:
        products = np.einsum("gab,ebc->geac", gens, elements).reshape(-1, 3, 3)
        candidates = np.concatenate([elements, products])
        keys = np.round(candidates.reshape(len(candidates), 9), 6)
        _, first = np.unique(keys, axis=0, return_index=True)
        grown = candidates[np.sort(first)]
        if len(grown) == len(elements) or len(grown) > order:
            elements = grown
            break
        elements = grown
    if len(elements) != order:
        raise AssertionError(f"generated {len(elements)} operators, expected {order}")
    return elements


def symmetry_operators(name: str) -> np.ndarray:
    """(order, 3, 3) rotation matrices of the point group ``name`` (identity first), acting on (x, y, z)."""
    kind, n = parse_symmetry(name)
    if kind == "C":
        return np.stack([rotation_about_z(360.0 * k / n) for k in range(n)])
    if kind == "D":
        cn = np.stack([rotation_about_z(360.0 * k / n) for k in range(n)])
        return np.concatenate([cn, cn @ rotation_about_x(180.0)])
    three = rotation_about_axis(np.array([1.0, 1.0, 1.0]), 120.0)
    if kind == "T":
        return _closure([rotation_about_z(180.0), rotation_about_x(180.0), three], 12)
    if kind == "O":
        return _closure([rotation_about_z(90.0), rotation_about_x(90.0), three], 24)
    five = rotation_about_axis(np.array([0.0, 1.0, GOLDEN]), 72.0)
    return _closure([rotation_about_z(180.0), rotation_about_x(180.0), three, five], 60)


def rotation_angle_deg(matrices: np.ndarray) -> np.ndarray:
    """Angle (°) of each rotation matrix (..., 3, 3), in [0, 180]."""
    m = np.asarray(matrices, dtype=np.float64)
    cos = (np.trace(m, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.rad2deg(np.arccos(np.clip(cos, -1.0, 1.0)))


def symmetric_angle_deg(found: np.ndarray, true: np.ndarray, symmetry: str = "C1") -> np.ndarray:
    """Angle (°) between rotations ``found`` and ``true`` (each (..., 3, 3), x_tomo = R x_ref + t) modulo the
    symmetry of the reference: min over operators G of the angle of (R_true G)ᵀ R_found."""
    ops = symmetry_operators(symmetry)
    relative = np.einsum("...ba,...bc->...ac", np.asarray(true, float), np.asarray(found, float))  # R_tᵀ R_f
    # trace(Gᵀ M) = Σ_ab G_ab M_ab
    traces = np.einsum("gab,...ab->...g", ops, relative)
    cos = (traces.max(axis=-1) - 1.0) / 2.0
    return np.rad2deg(np.arccos(np.clip(cos, -1.0, 1.0)))
