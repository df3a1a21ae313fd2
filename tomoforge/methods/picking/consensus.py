"""Consensus of several pickers: picks of different sets within a radius are one particle.

The sets are merged in turn: each pick of the next set joins the nearest particle found so far within
``radius_A`` (of its group, and only if that particle has no pick of this set yet, the closest pick
winning), else it starts a new particle. A particle's position is the mean of its picks; its orientation,
where picks carry one, the chordal L2 mean of their rotations after each is brought, by a symmetry operator
of the reference, as close as it can be to the first pick's (x_tomo = R x_ref + t, so R and R·G place the
same symmetric particle).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Consensus:
    """Particles found by merging K pick sets.

    ``members`` (m, K): the index of each particle's pick in set k, −1 where set k has none;
    ``positions_A`` (m, 3) the mean of its picks (Å); ``groups`` (m,) the group (tomogram code) of the picks;
    ``votes`` (m,) how many sets chose it.
    """

    members: np.ndarray
    positions_A: np.ndarray
    groups: np.ndarray
    votes: np.ndarray


def merge_picks(
    positions_A: Sequence[np.ndarray],
    radius_A: float,
    *,
    groups: Sequence[np.ndarray] | None = None,
) -> Consensus:
    """Merge K pick sets into particles (see the module docstring).

    Parameters
    ----------
    positions_A : K arrays (n_k, 3) float
        Each set's positions x, y, z (Å).
    radius_A : float
        Picks of different sets at most this far apart are the same particle (Å, > 0).
    groups : K arrays (n_k,) int, optional
        Group (tomogram) code of each pick: picks of different groups never merge.

    Returns
    -------
    Consensus
    """
    from scipy.spatial import cKDTree

    if not radius_A > 0 or not np.isfinite(radius_A):
        raise ValueError(f"radius_A must be a finite number > 0, got {radius_A}")
    sets = [np.asarray(p, dtype=np.float64).reshape(-1, 3) for p in positions_A]
    k_sets = len(sets)
    labels = [
        np.zeros(len(p), dtype=np.int64) if groups is None else np.asarray(groups[k], dtype=np.int64).reshape(-1)
        for k, p in enumerate(sets)
    ]
    # groups are kept apart by a shift along x larger than any distance within the sets
    everything = np.concatenate([*sets, np.zeros((1, 3))])
    span = float(np.ptp(everything, axis=0).max()) + 4.0 * radius_A + 1.0
    lowest = everything.min(axis=0)
    members = np.full((0, k_sets), -1, dtype=np.int64)
    sums = np.zeros((0, 3))
    counts = np.zeros(0, dtype=np.int64)
    centre_groups = np.zeros(0, dtype=np.int64)
    for k, (points, label) in enumerate(zip(sets, labels)):
        shifted = points - lowest
        shifted[:, 0] += label * span
        joined = np.full(len(points), -1, dtype=np.int64)
        if len(sums) and len(points):
            centres = sums / counts[:, None] - lowest
            centres[:, 0] += centre_groups * span
            distance, nearest = cKDTree(centres).query(shifted, distance_upper_bound=radius_A)
            ok = np.isfinite(distance)
            candidates = np.flatnonzero(ok)
            # one pick of this set per particle: the closest
            order = candidates[np.lexsort((distance[candidates], nearest[candidates]))]
            _, first = np.unique(nearest[order], return_index=True)
            winners = order[first]
            joined[winners] = nearest[winners]
        new = np.flatnonzero(joined < 0)
        joined[new] = len(sums) + np.arange(len(new))
        members = np.concatenate([members, np.full((len(new), k_sets), -1, dtype=np.int64)])
        sums = np.concatenate([sums, np.zeros((len(new), 3))])
        counts = np.concatenate([counts, np.zeros(len(new), dtype=np.int64)])
        centre_groups = np.concatenate([centre_groups, label[new]])
        members[joined, k] = np.arange(len(points))
        np.add.at(sums, joined, points)
        np.add.at(counts, joined, 1)
    return Consensus(
        members=members,
        positions_A=sums / np.maximum(counts, 1)[:, None],
        groups=centre_groups,
        votes=counts,
    )


def project_to_rotation(matrices: np.ndarray) -> np.ndarray:
    """The rotation nearest (Frobenius) to each 3×3 matrix (..., 3, 3): U diag(1, 1, det UVᵀ) Vᵀ."""
    u, _, vt = np.linalg.svd(np.asarray(matrices, dtype=np.float64))
    d = np.sign(np.linalg.det(u @ vt))
    d = np.where(d == 0, 1.0, d)
    u = u.copy()
    u[..., :, 2] *= d[..., None]
    return u @ vt


def mean_rotations(rotations: np.ndarray, present: np.ndarray, *, symmetry: str = "C1") -> np.ndarray:
    """Chordal L2 mean of each particle's rotations, modulo the reference's point group.

    Parameters
    ----------
    rotations : (m, K, 3, 3) float
        The rotation of each particle's pick in each set (x_tomo = R x_ref + t); ignored where not present.
    present : (m, K) bool
        Which picks exist and carry an orientation; each row needs at least one.
    symmetry : str
        Point group of the reference (``Cn``, ``Dn``, ``T``, ``O``, ``I``).

    Returns
    -------
    (m, 3, 3) float
        Each particle's mean rotation: every pick's R·G with the operator G that brings it nearest to the
        first present pick, averaged and projected back onto SO(3).
    """
    from tomoforge.methods.symmetry import symmetry_operators

    r = np.asarray(rotations, dtype=np.float64)
    mask = np.asarray(present, dtype=bool)
    m = len(r)
    if m == 0:
        return np.zeros((0, 3, 3))
    if not mask.any(axis=1).all():
        raise ValueError("every particle needs at least one oriented pick")
    first = np.argmax(mask, axis=1)
    reference = r[np.arange(m), first]  # (m, 3, 3)
    ops = symmetry_operators(symmetry)  # (g, 3, 3)
    relative = np.einsum("mba,mkbc->mkac", reference, r)  # R_refᵀ R_k
    # trace(R_refᵀ R_k G) = Σ_ab (R_refᵀ R_k)_ab G_ba
    traces = np.einsum("mkab,gba->mkg", relative, ops)
    best = ops[np.argmax(traces, axis=-1)]  # (m, K, 3, 3)
    aligned = r @ best
    total = np.einsum("mk,mkab->mab", mask.astype(np.float64), aligned)
    return project_to_rotation(total)


__all__ = ["Consensus", "mean_rotations", "merge_picks", "project_to_rotation"]
