"""Gold beads in 3D from a landmark (fiducial) model: where template matching must not pick.

A landmark model holds each bead's 2D position u_iv in the views v where it was tracked (gaps allowed). With
the tilt series' projection model (``methods.align.projection_model``), u_iv = P_v · X_i + s_v, P_v the
(2, 3) projection of view v and s_v its shift, so each bead's 3D position X_i (Å from the specimen centre) is
the linear least-squares solution over its tracked views:

    X_i = (Σ_v P_vᵀ P_v)⁻¹ Σ_v P_vᵀ (u_iv − s_v),

solved for every bead at once (normal equations, (m, 3, 3)). A bead seen in fewer than two views, or only in
views of one tilt (a singular system), is left out.
"""

from __future__ import annotations

import numpy as np


def triangulate(matrices: np.ndarray, shifts_A: np.ndarray, positions_A: np.ndarray) -> np.ndarray:
    """3D positions of landmarks from their 2D tracks.

    Parameters
    ----------
    matrices : (n_views, 2, 3)
        The projection of each view (``ProjectionModel.matrices()``), specimen (x, y, z) to image (x, y).
    shifts_A : (n_views, 2)
        Where the specimen centre lands in each view (Å from the image centre).
    positions_A : (n_views, m, 2)
        Each landmark's (x, y) in each view, Å from the image centre; NaN where it was not tracked.

    Returns
    -------
    (k, 3) float64
        (x, y, z) Å from the specimen centre of the landmarks seen in at least two views of different
        projections (the others left out), in the order of the model.
    """
    p = np.asarray(matrices, dtype=np.float64)
    u = np.asarray(positions_A, dtype=np.float64)
    seen = np.all(np.isfinite(u), axis=-1)  # (n_views, m)
    residual = np.where(seen[..., None], u - np.asarray(shifts_A, dtype=np.float64)[:, None, :], 0.0)
    normal = np.einsum("vm,vai,vaj->mij", seen.astype(np.float64), p, p)  # Σ_v Pᵀ P over the tracked views
    rhs = np.einsum("vai,vma->mi", p, residual)
    solvable = (seen.sum(0) >= 2) & (np.linalg.cond(normal) < 1e8) if len(normal) else np.zeros(0, bool)
    if not solvable.any():
        return np.zeros((0, 3))
    return np.linalg.solve(normal[solvable], rhs[solvable][..., None])[..., 0]


def exclusion_points_zyx(
    beads_A: np.ndarray, origin_A: tuple[float, float, float], voxel_A: float, shape_zyx: tuple[int, int, int]
) -> np.ndarray:
    """Bead centres (k, 3) (x, y, z) Å from the specimen centre as (z, y, x) voxels of a tomogram of
    ``shape_zyx`` whose centre (voxel N // 2) lies at ``origin_A`` in the specimen frame."""
    beads = np.asarray(beads_A, dtype=np.float64).reshape(-1, 3) - np.asarray(origin_A, dtype=np.float64)
    centre = np.array(shape_zyx)[::-1] // 2
    return (beads / voxel_A + centre)[:, ::-1]
