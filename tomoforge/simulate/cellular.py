"""Geometry of the crowded cell-like scene: flat membrane sheets and helical filaments.

A **sheet** is a flat disc of bilayer: the solid ellipsoid with semi-axes (a, b, t/2) (head groups) holding the
one with (a, b, t/2 − 10 Å) (hydrocarbon core), so the bilayer has its full thickness over the disc and thins
only at the rim (to 60 % at 0.8 of the radius: particles bind inside that). Its normal is the rotation's
third column.

A **filament** is a helix of subunits along a backbone that is a straight line or a circular arc (gently
curved: radius of curvature 1/κ). Subunit k sits at arc length s_k = s₀ + k · rise along the backbone, turned by
k · twist about it, ``radius_A`` from the axis. Its reference frame: z along the backbone tangent t, x the
radial direction e_r (from the axis to the subunit), y = t × e_r. With κ = 0 the backbone is straight.

Coordinates are Å, vectors (x, y, z); rotations map reference to tomogram: x_tomo = R · x_ref + position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Filament:
    """A helical filament: backbone samples and its subunits."""

    backbone_A: np.ndarray  # (m, 3) points on the axis, ``rise_A`` apart along the arc
    tangents: np.ndarray  # (m, 3) unit tangents there
    positions_A: np.ndarray  # (k, 3) subunit centres
    rotations: np.ndarray  # (k, 3, 3) subunit orientations (reference z along the axis, x radial)
    rise_A: float
    twist_deg: float
    radius_A: float
    curvature_per_A: float


def arc(
    centre_A: np.ndarray, direction: np.ndarray, bend: np.ndarray, curvature_per_A: float, s_A: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points (m, 3), unit tangents (m, 3), unit in-plane normals (m, 3)) at arc lengths ``s_A`` (m,) of the
    circle through ``centre_A`` with tangent ``direction`` there, bending towards ``bend`` (unit, ⟂ direction)
    with curvature κ (1/Å; 0: the straight line)."""
    s = np.asarray(s_A, dtype=np.float64)[:, None]
    k = float(curvature_per_A)
    along = s * np.sinc(k * s / np.pi)  # sin(κs)/κ, s where κ = 0
    across = 0.5 * k * s**2 * np.sinc(k * s / (2 * np.pi)) ** 2  # (1 − cos κs)/κ
    points = centre_A + along * direction + across * bend
    tangents = np.cos(k * s) * direction + np.sin(k * s) * bend
    normals = -np.sin(k * s) * direction + np.cos(k * s) * bend
    return points, tangents, normals


def helical_filament(
    centre_A: np.ndarray,
    direction: np.ndarray,
    bend: np.ndarray,
    curvature_per_A: float,
    length_A: float,
    *,
    rise_A: float,
    twist_deg: float,
    radius_A: float,
    phase_deg: float = 0.0,
) -> Filament:
    """The subunits of a helix ``length_A`` long centred on ``centre_A`` (see the module docstring): subunit
    k at s_k = −length/2 + k · rise, turned by phase + k · twist about the backbone."""
    direction = np.asarray(direction, dtype=np.float64) / np.linalg.norm(direction)
    bend = np.asarray(bend, dtype=np.float64)
    bend = bend - (bend @ direction) * direction
    bend /= np.linalg.norm(bend)
    binormal = np.cross(direction, bend)
    count = int(np.floor(length_A / rise_A)) + 1
    s = -length_A / 2 + rise_A * np.arange(count)
    points, tangents, normals = arc(centre_A, direction, bend, curvature_per_A, s)
    phi = np.deg2rad(phase_deg + twist_deg * np.arange(count))[:, None]
    radial = np.cos(phi) * normals + np.sin(phi) * binormal
    rotations = np.stack([radial, np.cross(tangents, radial), tangents], axis=-1)  # columns x, y, z
    return Filament(
        points, tangents, points + radius_A * radial, rotations, rise_A, twist_deg, radius_A, curvature_per_A
    )


@dataclass
class Sheet:
    """A flat disc of bilayer (see the module docstring)."""

    centre_A: np.ndarray
    semi_axes_A: np.ndarray  # (a, b) in the plane, along the rotation's first two columns
    rotation: np.ndarray  # third column: the normal
    membrane_thickness_A: float

    @property
    def normal(self) -> np.ndarray:
        return np.asarray(self.rotation[:, 2])


def sheet_conflicts(
    points_A: np.ndarray, radius_A: float, sheets: list[Sheet], margin_A: float, ignore: int = -1
) -> np.ndarray:
    """(m,) True where a sphere of ``radius_A`` at a point of ``points_A`` (m, 3) comes within ``margin_A``
    of a sheet (its bilayer slab, out to the rim enlarged by the sphere); sheet ``ignore`` is skipped."""
    p = np.asarray(points_A, dtype=np.float64).reshape(-1, 3)
    hit = np.zeros(len(p), dtype=bool)
    for i, sh in enumerate(sheets):  # a loop over the few sheets, vectorised over the points
        if i == ignore:
            continue
        u = (p - sh.centre_A) @ sh.rotation  # sheet frame
        reach = sh.semi_axes_A + radius_A + margin_A
        inside = (u[:, 0] / reach[0]) ** 2 + (u[:, 1] / reach[1]) ** 2 < 1
        hit |= inside & (np.abs(u[:, 2]) < sh.membrane_thickness_A / 2 + radius_A + margin_A)
    return hit


def sheet_height_extent_A(
    semi_axes_A: np.ndarray, rotation: np.ndarray, thickness_A: float, normal: np.ndarray
) -> float:
    """Half extent (Å) of the sheet's ellipsoid along the unit vector ``normal`` (e.g. the ice slab's)."""
    axes = np.array([semi_axes_A[0], semi_axes_A[1], thickness_A / 2])
    return float(np.sqrt(((rotation.T @ normal) ** 2 * axes**2).sum()))
