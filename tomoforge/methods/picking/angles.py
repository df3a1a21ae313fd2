"""Angular sampling of SO(3) for template matching: a step in degrees or Crowther's, symmetry, cones.

Rotations act on (x, y, z) vectors (x_tomogram = R · x_reference), as everywhere in tomoforge. A step Δ
(radians) stands for ``8 π² / Δ³`` rotations, the count an Euler-angle grid of step Δ in each angle holds
(the convention of pyTME and pytom-match-pick, so that the same step costs the same), spread near-uniformly
by a super-Fibonacci spiral (Alexa 2022). Their covering radius (the largest angle from any rotation to the
nearest sample) is below Δ: ``covering_radius_deg`` measures it.
"""

from __future__ import annotations

import numpy as np

from tomoforge.errors import UserError
from tomoforge.methods.map_alignment import super_fibonacci_rotations
from tomoforge.methods.symmetry import symmetry_operators

MAX_ROTATIONS = 5_000_000


class AngularSamplingError(UserError, ValueError):
    """An angular step, diameter or resolution out of range."""


def crowther_step_deg(diameter_A: float, resolution_A: float) -> float:
    """Angular step (°) at which the particle's rim moves by the target resolution: (180/π) · d / D.

    Parameters
    ----------
    diameter_A : float
        Particle diameter D (Å).
    resolution_A : float
        Target resolution d (Å), usually twice the tomogram's voxel size or coarser.

    Returns
    -------
    float
        The step (°).
    """
    if diameter_A <= 0 or resolution_A <= 0:
        raise AngularSamplingError(
            f"Crowther step: diameter_A ({diameter_A}) and resolution_A ({resolution_A}) must both be > 0"
        )
    return float(np.rad2deg(resolution_A / diameter_A))


def rotation_count(step_deg: float) -> int:
    """Rotations of SO(3) at step Δ: ceil(8 π² / Δ³), Δ in radians (an Euler grid's count)."""
    if not 0.5 <= step_deg <= 180.0:
        raise AngularSamplingError(f"angular step_deg {step_deg}: allowed 0.5 to 180")
    return max(1, int(np.ceil(8 * np.pi**2 / np.deg2rad(step_deg) ** 3)))


def reduce_by_symmetry(rotations: np.ndarray, symmetry: str) -> np.ndarray:
    """The rotations R (n, 3, 3) that lie in the fundamental domain of the point group: R is kept when it is
    the closest of its equivalents R·G (G an operator of ``symmetry``) to the identity, so about
    n / |G| remain and every rotation of SO(3) is still within the covering radius of one of them, up to G."""
    ops = symmetry_operators(symmetry)
    if len(ops) == 1:
        return rotations
    # trace(R G) = Σ_ab R_ab G_ba
    traces = np.einsum("nab,gba->ng", rotations, ops)
    return rotations[np.argmax(traces, axis=1) == 0]


def restrict_to_cones(rotations: np.ndarray, normals_xyz: np.ndarray, cone_deg: float) -> np.ndarray:
    """The rotations whose reference z axis (R · ẑ, the third column) lies within ``cone_deg`` of one of the
    unit vectors ``normals_xyz`` (m, 3) (x, y, z): e.g. membrane proteins with their axis along the normal.
    The rotation about the axis stays free."""
    normals = np.asarray(normals_xyz, dtype=np.float64).reshape(-1, 3)
    normals = normals / np.linalg.norm(normals, axis=1, keepdims=True)
    cos = rotations[:, :, 2] @ normals.T  # (n, m)
    return rotations[(cos >= np.cos(np.deg2rad(cone_deg))).any(axis=1)]


def angular_sampling(
    step_deg: float,
    *,
    symmetry: str = "C1",
    normals_xyz: np.ndarray | None = None,
    cone_deg: float = 180.0,
) -> np.ndarray:
    """Rotations to search, (n, 3, 3) float64 acting on (x, y, z), identity-free order of a super-Fibonacci
    spiral.

    Parameters
    ----------
    step_deg : float
        Angular step Δ (°, 0.5–180): ``rotation_count(Δ)`` rotations over SO(3) before the reductions.
    symmetry : str
        Point group of the reference (Cn, Dn, T, O, I): only its fundamental domain is searched.
    normals_xyz : ndarray (m, 3), optional
        Directions (x, y, z) around which the reference's z axis must lie (within ``cone_deg``).
    cone_deg : float
        Half-angle of the cones (°); 180 keeps everything.

    Returns
    -------
    ndarray (n, 3, 3)
        The rotations.
    """
    n = rotation_count(step_deg)
    if n > MAX_ROTATIONS:
        raise AngularSamplingError(f"angular step_deg {step_deg} needs {n} rotations (at most {MAX_ROTATIONS})")
    rotations = reduce_by_symmetry(super_fibonacci_rotations(n), symmetry)
    if normals_xyz is not None and cone_deg < 180.0:
        rotations = restrict_to_cones(rotations, normals_xyz, cone_deg)
    if len(rotations) == 0:
        raise AngularSamplingError(f"no rotation left at step {step_deg}° within cone_deg {cone_deg}: widen it")
    return rotations


def covering_radius_deg(rotations: np.ndarray, probes: np.ndarray, symmetry: str = "C1") -> float:
    """The largest angle (°) from each of the ``probes`` (k, 3, 3) to its nearest rotation of the set (up to the
    symmetry): with many random probes, an estimate of the set's covering radius."""
    ops = symmetry_operators(symmetry)
    equivalent = np.einsum("nab,gbc->ngac", rotations, ops).reshape(-1, 3, 3)
    # cos of the angle between P and S: (trace(Sᵀ P) − 1) / 2; the nearest S has the largest trace
    traces = np.einsum("sab,kab->ks", equivalent, probes)
    cos = (traces.max(axis=1) - 1.0) / 2.0
    return float(np.rad2deg(np.arccos(np.clip(cos, -1.0, 1.0))).max())


def per_location_cones(
    rotations: np.ndarray, normals_xyz: np.ndarray, cone_deg: float, *, resolution_deg: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cones around per-location normals (membrane proteins: the axis along the local membrane normal).

    The normals (m, 3) are grouped by direction (each to the nearest of a Fibonacci sphere's directions spaced
    ``resolution_deg``, default cone_deg / 5 but at least 1°, so a cone is exact to half that); the rotations
    kept are those whose z axis lies within ``cone_deg`` of a group's direction.

    Returns
    -------
    (rotations (r, 3, 3), allowed (r, g) bool, group of each normal (m,) int)
        ``allowed[i, j]``: rotation i's z axis lies within the cone of group j.
    """
    from scipy.spatial import cKDTree

    normals = np.asarray(normals_xyz, dtype=np.float64).reshape(-1, 3)
    normals = normals / np.linalg.norm(normals, axis=1, keepdims=True)
    spacing = np.deg2rad(resolution_deg if resolution_deg is not None else max(1.0, cone_deg / 5))
    count = int(np.ceil(4 * np.pi / spacing**2))
    i = np.arange(count) + 0.5
    z = 1 - 2 * i / count
    phi = np.pi * (1 + 5**0.5) * i
    sphere = np.stack([np.sqrt(1 - z * z) * np.cos(phi), np.sqrt(1 - z * z) * np.sin(phi), z], 1)
    nearest = cKDTree(sphere).query(normals)[1]
    used, group = np.unique(nearest, return_inverse=True)
    directions = sphere[used]
    allowed = rotations[:, :, 2] @ directions.T >= np.cos(np.deg2rad(cone_deg))
    keep = allowed.any(axis=1)
    if not keep.any():
        raise AngularSamplingError(f"no rotation within cone_deg {cone_deg} of the normals: widen it")
    return rotations[keep], allowed[keep], group.astype(np.int64)


def nearest_point_map(points_zyx: np.ndarray, shape: tuple[int, int, int], max_distance_px: float | None) -> np.ndarray:
    """(z, y, x) int64: at each voxel the index of the nearest of the points (k, 3) (z, y, x voxels, rounded),
    −1 farther than ``max_distance_px`` (None: no limit) or where there are no points (Euclidean distance
    transform with its feature indices)."""
    from scipy.ndimage import distance_transform_edt

    out = np.full(shape, -1, dtype=np.int64)
    pts = np.round(np.asarray(points_zyx, dtype=np.float64).reshape(-1, 3)).astype(np.int64)
    inside = np.all((pts >= 0) & (pts < np.array(shape)), axis=1)
    if not inside.any():
        return out
    ids = np.full(shape, -1, dtype=np.int64)
    ids[tuple(pts[inside].T)] = np.flatnonzero(inside)
    distance, nearest = distance_transform_edt(ids < 0, return_indices=True)
    out = ids[tuple(nearest)]
    if max_distance_px is not None:
        out[distance > max_distance_px] = -1
    return out
