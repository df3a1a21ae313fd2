"""Particle directions against surface normals: the angle between a particle's z axis and a direction.

A particle's direction is its reference z axis seen in the tomogram: the third column of its rotation R
(x_tomo = R x_ref + t), which for a membrane protein is the axis a reference is built along (the membrane
normal). The direction it is compared with is a fixed vector, the normal of the nearest point of a set of
surface points, or the normal of an ellipsoid fitted to the picks of its group (a vesicle: the gradient of
the fitted quadric, pointing away from its centre).
"""

from __future__ import annotations

import numpy as np


def particle_directions(rotations: np.ndarray) -> np.ndarray:
    """(n, 3) unit z axes of the references in the tomogram: R[:, :, 2] for rotations (n, 3, 3)."""
    r = np.asarray(rotations, dtype=np.float64)
    return r[..., :, 2] / np.linalg.norm(r[..., :, 2], axis=-1, keepdims=True)


def angle_between_deg(directions: np.ndarray, references: np.ndarray, *, either_sign: bool = False) -> np.ndarray:
    """Angle (°) between unit vectors (n, 3) and references (3,) or (n, 3); with ``either_sign`` the angle to
    ±reference (a normal whose sign is unknown), in [0, 90]."""
    d = np.asarray(directions, dtype=np.float64)
    ref = np.asarray(references, dtype=np.float64)
    ref = ref / np.linalg.norm(ref, axis=-1, keepdims=True)
    cos = np.einsum("...i,...i->...", d, np.broadcast_to(ref, d.shape))
    if either_sign:
        cos = np.abs(cos)
    return np.rad2deg(np.arccos(np.clip(cos, -1.0, 1.0)))


def fit_ellipsoids(points_A: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares quadrics x'ᵀ A x' = 1 (x' = x − c) through the points of each group, all groups at once.

    Solves a x² + b y² + c z² + 2d xy + 2e xz + 2f yz + 2g x + 2h y + 2i z = 1 per group (each point shifted by
    its group's mean for conditioning), then A and c from the nine coefficients.

    Parameters
    ----------
    points_A : (n, 3) float
        Points x, y, z (Å), e.g. picks on vesicles.
    groups : (n,) int
        Group code of each point (0 … G − 1); a group needs 9 points not on a simpler surface.

    Returns
    -------
    matrices : (G, 3, 3)
        A of each group's quadric (positive definite for an ellipsoid).
    centres : (G, 3)
        Its centre c (Å).
    ok : (G,) bool
        Whether the fit is an ellipsoid (enough points, A positive definite).
    """
    p = np.asarray(points_A, dtype=np.float64).reshape(-1, 3)
    g = np.asarray(groups, dtype=np.int64).reshape(-1)
    n_groups = int(g.max()) + 1 if len(g) else 0
    counts = np.bincount(g, minlength=n_groups).astype(np.float64)
    means = np.zeros((n_groups, 3))
    np.add.at(means, g, p)
    means /= np.maximum(counts, 1)[:, None]
    scale = np.zeros(n_groups)
    local = p - means[g]
    np.maximum.at(scale, g, np.abs(local).max(axis=1))
    scale = np.where(scale > 0, scale, 1.0)
    q = local / scale[g][:, None]
    x, y, z = q.T
    design = np.stack([x * x, y * y, z * z, 2 * x * y, 2 * x * z, 2 * y * z, 2 * x, 2 * y, 2 * z], axis=1)
    normal = np.zeros((n_groups, 9, 9))
    np.add.at(normal, g, design[:, :, None] * design[:, None, :])
    rhs = np.zeros((n_groups, 9))
    np.add.at(rhs, g, design)
    enough = counts >= 9
    regular = enough & (np.linalg.cond(np.where(enough[:, None, None], normal, np.eye(9))) < 1e12)
    solved = np.linalg.solve(
        np.where(regular[:, None, None], normal, np.eye(9)), np.where(regular[:, None], rhs, 0)[..., None]
    )[..., 0]
    a, b, c, d, e, f, gx, gy, gz = solved.T
    quad = np.stack([np.stack([a, d, e], -1), np.stack([d, b, f], -1), np.stack([e, f, c], -1)], -2)
    lin = np.stack([gx, gy, gz], -1)
    invertible = regular & (np.abs(np.linalg.det(np.where(regular[:, None, None], quad, np.eye(3)))) > 1e-12)
    quad_safe = np.where(invertible[:, None, None], quad, np.eye(3))
    centre_q = -np.linalg.solve(quad_safe, lin[..., None])[..., 0]
    # (x − c)ᵀ Q (x − c) = 1 + cᵀ Q c
    level = 1.0 + np.einsum("gi,gij,gj->g", centre_q, quad_safe, centre_q)
    level_safe = np.where(np.abs(level) > 1e-12, level, 1.0)
    matrices = quad_safe / level_safe[:, None, None] / (scale**2)[:, None, None]
    centres = means + centre_q * scale[:, None]
    positive = np.linalg.eigvalsh(matrices).min(axis=-1) > 0
    return matrices, centres, invertible & positive & (np.abs(level) > 1e-12)


def ellipsoid_normals(
    points_A: np.ndarray, matrices: np.ndarray, centres: np.ndarray, groups: np.ndarray
) -> np.ndarray:
    """(n, 3) unit outward normals A (x − c) of each point's group ellipsoid (at points on or near it)."""
    p = np.asarray(points_A, dtype=np.float64).reshape(-1, 3)
    g = np.asarray(groups, dtype=np.int64).reshape(-1)
    gradient = np.einsum("nij,nj->ni", np.asarray(matrices)[g], p - np.asarray(centres)[g])
    return gradient / np.linalg.norm(gradient, axis=1, keepdims=True)


def nearest_normals(
    points_A: np.ndarray,
    surface_A: np.ndarray,
    surface_normals: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    surface_groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The normal of the nearest surface point of the same group, for each point.

    Parameters
    ----------
    points_A : (n, 3) float
        Points (Å).
    surface_A, surface_normals : (s, 3) float
        Surface points (Å) and their unit normals.
    groups, surface_groups : (n,), (s,) int, optional
        Codes (e.g. tomograms); a point only takes normals of its own group.

    Returns
    -------
    normals : (n, 3)
        NaN where the group has no surface point.
    distance_A : (n,)
        Distance to that surface point (inf where none).
    """
    from scipy.spatial import cKDTree

    p = np.asarray(points_A, dtype=np.float64).reshape(-1, 3)
    s = np.asarray(surface_A, dtype=np.float64).reshape(-1, 3)
    sn = np.asarray(surface_normals, dtype=np.float64).reshape(-1, 3)
    pg = np.zeros(len(p), np.int64) if groups is None else np.asarray(groups, np.int64)
    sg = np.zeros(len(s), np.int64) if surface_groups is None else np.asarray(surface_groups, np.int64)
    normals = np.full((len(p), 3), np.nan)
    distance = np.full(len(p), np.inf)
    for label in np.intersect1d(np.unique(pg), np.unique(sg)):  # one tree per tomogram
        mine, theirs = np.flatnonzero(pg == label), np.flatnonzero(sg == label)
        d, i = cKDTree(s[theirs]).query(p[mine])
        normals[mine] = sn[theirs[i]]
        distance[mine] = d
    return normals, distance


__all__ = [
    "angle_between_deg",
    "ellipsoid_normals",
    "fit_ellipsoids",
    "nearest_normals",
    "particle_directions",
]
