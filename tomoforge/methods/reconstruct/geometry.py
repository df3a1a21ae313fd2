"""Geometry of a reconstruction: the tomogram's voxel grid, and how the back-projector reads the views.

The projection model is RELION 5's, defined once in ``tomoforge.methods.align.projection_model.ProjectionModel``
(built from a tilt series by ``TiltSeries.projection_model``): a point X (Å, from
the specimen centre, x y z) lands in view i at

    [u, v] = (Rz(ZRot_i) · Ry(YTilt_i) · Rx(XTilt_i) · X)[:2] + (XShift_i, YShift_i)

in Å from the image centre (pixel n // 2). A tomogram is a (z, y, x) grid of cubic voxels whose voxel
n // 2 sits at ``centre_A`` in that specimen frame; its y axis is the tilt axis.

Decomposition used by the back-projector (exact): with a = XTilt, b = YTilt, for a voxel at X = (x, y, z)

    τ = cos b · x + sin b / cos a · z          (along the line perpendicular to the tilt axis)
    ρ = y − tan a · z                          (the line: a row of the tomogram, shifted in z by XTilt)
    [u, v] = Rz(ZRot) · (τ + sin b sin a · ρ, cos a · ρ) + shift

so each view is sampled once along lines of constant ρ (one per tomogram row) and every voxel reads
that line at τ: a 1D position shared by all rows, and a row offset −tan a · z shared by all x.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class VolumeGeometry:
    """A tomogram grid: shape (z, y, x), cubic voxels of ``voxel_size_A``, voxel n // 2 at ``centre_A``
    (x, y, z in Å, specimen frame)."""

    shape_zyx: tuple[int, int, int]
    voxel_size_A: float
    centre_A: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if len(self.shape_zyx) != 3 or min(self.shape_zyx) < 1:
            raise ValueError(f"volume shape must be 3 positive sizes (z, y, x), got {self.shape_zyx}")
        if not self.voxel_size_A > 0:
            raise ValueError(f"voxel size must be > 0 Å, got {self.voxel_size_A}")

    @property
    def n_voxels(self) -> int:
        return int(np.prod(self.shape_zyx))

    def axis_px(self, axis: str) -> np.ndarray:
        """Voxel centres along ``axis`` ('x', 'y' or 'z') in voxels from the specimen centre."""
        n = self.shape_zyx["zyx".index(axis)]
        return np.arange(n) - n // 2 + self.centre_A["xyz".index(axis)] / self.voxel_size_A

    def position_A(self, index_zyx: Sequence[ArrayLike]) -> np.ndarray:
        """Specimen position (x, y, z in Å) of voxel index (z, y, x) (fractional allowed)."""
        iz, iy, ix = (np.asarray(v, dtype=np.float64) for v in index_zyx)
        nz, ny, nx = self.shape_zyx
        c = self.centre_A
        return np.stack(
            [
                (ix - nx // 2) * self.voxel_size_A + c[0],
                (iy - ny // 2) * self.voxel_size_A + c[1],
                (iz - nz // 2) * self.voxel_size_A + c[2],
            ],
            axis=-1,
        )

    def z_part(self, z0: int, z1: int) -> VolumeGeometry:
        """The sub-volume of z indices [z0, z1) (same voxels, same positions)."""
        nz = self.shape_zyx[0]
        n = z1 - z0
        cz = self.centre_A[2] + (z0 + n // 2 - nz // 2) * self.voxel_size_A
        return VolumeGeometry(
            (n, self.shape_zyx[1], self.shape_zyx[2]), self.voxel_size_A, (self.centre_A[0], self.centre_A[1], cz)
        )

    def index_of(self, position_A: ArrayLike) -> np.ndarray:
        """Fractional voxel index (z, y, x) of a specimen position (x, y, z in Å)."""
        p = np.asarray(position_A, dtype=np.float64)
        nz, ny, nx = self.shape_zyx
        c, s = self.centre_A, self.voxel_size_A
        return np.stack(
            [(p[..., 2] - c[2]) / s + nz // 2, (p[..., 1] - c[1]) / s + ny // 2, (p[..., 0] - c[0]) / s + nx // 2],
            axis=-1,
        )


def default_volume_shape(
    image_shape_yx: tuple[int, int],
    z_rot_deg: float,
    thickness_px: int,
    size_x_px: int | None = None,
    size_y_px: int | None = None,
) -> tuple[int, int, int]:
    """(z, y, x) size covering the images: x across the tilt axis, y along it (sides swapped when the tilt
    axis is closer to the image X axis than to its Y axis)."""
    ny, nx = image_shape_yx
    a = np.deg2rad(z_rot_deg)
    across, along = (nx, ny) if abs(np.cos(a)) >= abs(np.sin(a)) else (ny, nx)
    return (int(thickness_px), int(size_y_px or along), int(size_x_px or across))


def angular_weights(tilt_deg: np.ndarray) -> np.ndarray:
    """Angle (radians) each view stands for: half the gap to each neighour in tilt (the full gap at
    the ends), so that the sum is the angular range covered, for uneven steps too."""
    t = np.deg2rad(np.asarray(tilt_deg, dtype=np.float64))
    if len(t) == 1:
        return np.ones(1)
    order = np.argsort(t)
    s = t[order]
    gaps = np.diff(s)
    w = np.empty_like(s)
    w[1:-1] = 0.5 * (gaps[:-1] + gaps[1:])
    w[0], w[-1] = gaps[0], gaps[-1]
    out = np.empty_like(w)
    out[order] = w
    return out


__all__ = ["VolumeGeometry", "default_volume_shape", "angular_weights"]
