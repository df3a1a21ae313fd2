"""Solid ellipsoids: exact chord lengths along z, for projections and z-integrated voxels.

An ellipsoid is {x : (x − c)ᵀ A (x − c) ≤ 1} with A = R diag(1/a²) Rᵀ (semi-axes a, rotation R,
vectors (x, y, z) in Å). ``add_ellipsoid_projection`` adds weight × (length of the vertical line
through each pixel centre inside the ellipsoid, clipped to a height range); ``add_ellipsoid_volume``
gives each voxel weight × (the part of that length within the voxel's z extent) / voxel size, so the
z-sum of the volume times the voxel size equals the projection exactly.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def ellipsoid_matrix(semi_axes_A: np.ndarray, rotation_xyz: np.ndarray | None = None) -> np.ndarray:
    """A = R diag(1 / a²) Rᵀ for semi-axes ``a`` (Å) along the columns of ``rotation_xyz``."""
    r = np.eye(3) if rotation_xyz is None else np.asarray(rotation_xyz, dtype=np.float64)
    return r @ np.diag(1.0 / np.asarray(semi_axes_A, dtype=np.float64) ** 2) @ r.T


def ellipsoid_half_extents(matrix: np.ndarray) -> np.ndarray:
    """Half widths (Å) of the axis-aligned bounding box along x, y, z: sqrt(diag(A⁻¹))."""
    return np.sqrt(np.diag(np.linalg.inv(matrix)))


def ellipsoid_outward_normal(matrix: np.ndarray, centre: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Unit outward normals (n, 3) at surface ``points`` (n, 3): A (x − c) normalised."""
    g = (np.asarray(points) - centre) @ np.asarray(matrix).T
    return g / np.linalg.norm(g, axis=-1, keepdims=True)


def chord_interval(
    u: torch.Tensor, v: torch.Tensor, centre: np.ndarray, matrix: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """(z_low, z_high) where the line (u, v, z) crosses the ellipsoid; z_low = z_high where it misses."""
    a = matrix
    du, dv = u - float(centre[0]), v - float(centre[1])
    qa = float(a[2, 2])
    qb = float(a[0, 2]) * du + float(a[1, 2]) * dv
    qc = float(a[0, 0]) * du * du + 2 * float(a[0, 1]) * du * dv + float(a[1, 1]) * dv * dv - 1.0
    disc = torch.clamp(qb * qb - qa * qc, min=0.0)
    root = torch.sqrt(disc)
    mid = float(centre[2]) - qb / qa
    return mid - root / qa, mid + root / qa


def _box(centre_px: float, half_px: float, size: int) -> tuple[int, int]:
    return max(int(math.floor(centre_px - half_px)) - 1, 0), min(int(math.ceil(centre_px + half_px)) + 2, size)


def add_ellipsoid_projection(
    image: torch.Tensor,
    pixel_size_A: float,
    centre_A: np.ndarray,
    matrix: np.ndarray,
    weight: float,
    z_range_A: tuple[float, float] = (-math.inf, math.inf),
) -> None:
    """Add weight × chord length (Å) within ``z_range_A`` to ``image`` (y, x) in place; pixel n // 2
    is at 0 Å."""
    ny, nx = image.shape
    half = ellipsoid_half_extents(matrix)
    cx, cy = centre_A[0] / pixel_size_A + nx // 2, centre_A[1] / pixel_size_A + ny // 2
    x0, x1 = _box(cx, half[0] / pixel_size_A, nx)
    y0, y1 = _box(cy, half[1] / pixel_size_A, ny)
    if x1 <= x0 or y1 <= y0:
        return
    xs = (torch.arange(x0, x1, dtype=torch.float64) - nx // 2) * pixel_size_A
    ys = (torch.arange(y0, y1, dtype=torch.float64) - ny // 2) * pixel_size_A
    v, u = torch.meshgrid(ys, xs, indexing="ij")
    lo, hi = chord_interval(u, v, centre_A, matrix)
    length = torch.clamp(
        torch.minimum(hi, torch.tensor(z_range_A[1], dtype=torch.float64))
        - torch.maximum(lo, torch.tensor(z_range_A[0], dtype=torch.float64)),
        min=0.0,
    )
    image[y0:y1, x0:x1] += (weight * length).to(image.dtype)


def add_ellipsoid_volume(
    volume: torch.Tensor, pixel_size_A: float, centre_A: np.ndarray, matrix: np.ndarray, weight: float
) -> None:
    """Add weight × (fraction of each voxel's z extent inside the ellipsoid along its centre line) to
    ``volume`` (z, y, x) in place; voxel n // 2 is at 0 Å."""
    nz, ny, nx = volume.shape
    half = ellipsoid_half_extents(matrix)
    c = [centre_A[i] / pixel_size_A + n // 2 for i, n in enumerate((nx, ny, nz))]
    x0, x1 = _box(c[0], half[0] / pixel_size_A, nx)
    y0, y1 = _box(c[1], half[1] / pixel_size_A, ny)
    z0, z1 = _box(c[2], half[2] / pixel_size_A, nz)
    if x1 <= x0 or y1 <= y0 or z1 <= z0:
        return
    xs = (torch.arange(x0, x1, dtype=torch.float64) - nx // 2) * pixel_size_A
    ys = (torch.arange(y0, y1, dtype=torch.float64) - ny // 2) * pixel_size_A
    zs = (torch.arange(z0, z1, dtype=torch.float64) - nz // 2) * pixel_size_A
    v, u = torch.meshgrid(ys, xs, indexing="ij")
    lo, hi = chord_interval(u, v, centre_A, matrix)
    top = torch.minimum(hi[None], zs[:, None, None] + pixel_size_A / 2)
    bottom = torch.maximum(lo[None], zs[:, None, None] - pixel_size_A / 2)
    frac = torch.clamp(top - bottom, min=0.0) / pixel_size_A
    volume[z0:z1, y0:y1, x0:x1] += (weight * frac).to(volume.dtype)
