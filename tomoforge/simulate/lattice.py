"""Hexagonal lattices of assemblies on the inner surface of ellipsoidal virions (immature HIV-1 Gag-like).

A sphere cannot be tiled by a hexagonal lattice, and real immature capsids are not: they are patches of
hexagonal lattice with gaps between them. ``ellipsoid_lattice`` builds that: patch centres spread over an
ellipsoid (the lattice surface: the membrane's mid-surface moved inwards), a planar hexagonal lattice in each
centre's tangent plane, in a random in-plane orientation, mapped onto the surface so that distances from the
patch centre are kept (a point ρ from the centre goes to the surface point along the same direction whose
chord length from the centre is ρ), each point kept by the patch whose centre is nearest, and then a fraction
of the sites emptied at random. Every site is projected exactly onto the surface (closest point). Each
assembly's symmetry axis (its reference z) is the outward surface normal; its reference x axis is the patch's
first lattice vector carried into the local tangent plane, so the in-plane angle follows the lattice.

Coordinates are Å, (x, y, z), in the virion's frame unless said otherwise (``to_tomogram`` moves them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


def closest_point_on_ellipsoid(points: np.ndarray, semi_axes_A: np.ndarray, iterations: int = 40) -> np.ndarray:
    """Closest points (m, 3) on the axis-aligned ellipsoid Σ (x_i / a_i)² = 1 to ``points`` (m, 3) outside
    or inside it (Newton on the Lagrange parameter t: x_i = a_i² p_i / (a_i² + t))."""
    p = np.asarray(points, dtype=np.float64)
    a2 = np.asarray(semi_axes_A, dtype=np.float64) ** 2
    t = np.zeros(len(p))
    lower = -a2.min() + 1e-9
    for _ in range(iterations):
        q = a2 * p / (a2 + t[:, None])
        f = (q**2 / a2).sum(1) - 1.0
        df = -2.0 * (q**2 / (a2 * (a2 + t[:, None]))).sum(1)
        t = np.maximum(t - f / df, (t + lower) / 2)
    return a2 * p / (a2 + t[:, None])


def ellipsoid_normals(points: np.ndarray, semi_axes_A: np.ndarray) -> np.ndarray:
    """Outward unit normals (m, 3) of the axis-aligned ellipsoid at surface ``points`` (m, 3)."""
    g = np.asarray(points, dtype=np.float64) / np.asarray(semi_axes_A, dtype=np.float64) ** 2
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def _tangent_frames(normals: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random in-plane unit vectors e1 ⟂ normal and e2 = normal × e1, each (m, 3)."""
    helper = np.where(np.abs(normals[:, :1]) < 0.9, np.array([[1.0, 0, 0]]), np.array([[0, 1.0, 0]]))
    u = np.cross(normals, helper)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.cross(normals, u)
    angle = rng.uniform(0, 2 * np.pi, size=(len(normals), 1))
    e1 = np.cos(angle) * u + np.sin(angle) * v
    return e1, np.cross(normals, e1)


def _spread_on_surface(semi_axes_A: np.ndarray, distance_A: float, rng: np.random.Generator) -> np.ndarray:
    """Points on the ellipsoid at least ``distance_A`` apart, covering it (dart throwing on many candidates)."""
    area = 4 * np.pi * (np.prod(semi_axes_A) ** (2 / 3))  # ≈ area of a near-spherical ellipsoid
    n = int(40 * area / distance_A**2) + 50
    d = rng.normal(size=(n, 3))
    candidates = closest_point_on_ellipsoid(d / np.linalg.norm(d, axis=1, keepdims=True) * semi_axes_A, semi_axes_A)
    pairs = cKDTree(candidates).query_pairs(distance_A, output_type="ndarray")
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for i, j in pairs:  # greedy thinning in a random order: a loop over patch candidates, not particles
        neighbours[i].append(j)
        neighbours[j].append(i)
    taken = np.zeros(n, dtype=bool)
    blocked = np.zeros(n, dtype=bool)
    for i in range(n):
        if not blocked[i]:
            taken[i] = True
            blocked[neighbours[i]] = True
    return candidates[taken]


@dataclass
class Lattice:
    """Sites of a lattice on an ellipsoid (virion frame)."""

    positions_A: np.ndarray  # (k, 3) on the lattice surface
    rotations: np.ndarray  # (k, 3, 3): reference z → outward normal, reference x → local lattice direction
    normals: np.ndarray  # (k, 3) outward unit normals
    patch: np.ndarray  # (k,) index of the patch a site belongs to


def ellipsoid_lattice(
    semi_axes_A: np.ndarray,
    spacing_A: float,
    rng: np.random.Generator,
    *,
    gap_fraction: float = 0.1,
    patch_radius_A: float | None = None,
) -> Lattice:
    """A patchy hexagonal lattice of sites ``spacing_A`` apart on the axis-aligned ellipsoid with
    ``semi_axes_A``; ``gap_fraction`` of the sites left empty at random. Patches have a radius of
    ``patch_radius_A`` (default 0.38 × the smallest radius of curvature, a_min² / a_max, within which
    mapping the plane onto the surface changes lattice distances by < 2 %); of two sites of different
    patches closer than 0.98 × spacing one is removed, so the edges between patches are seams with gaps."""
    axes = np.asarray(semi_axes_A, dtype=np.float64)
    curvature = axes.min() ** 2 / axes.max()  # smallest radius of curvature
    radius = 0.38 * curvature if patch_radius_A is None else patch_radius_A
    centres = _spread_on_surface(axes, 1.3 * radius, rng)  # most surface points are < radius from a centre
    normals = ellipsoid_normals(centres, axes)
    e1, e2 = _tangent_frames(normals, rng)
    # planar hexagonal lattice covering a disc of the patch radius (which holds each centre's Voronoi cell)
    k = int(np.ceil(radius / spacing_A)) + 1
    i, j = np.meshgrid(np.arange(-k, k + 1), np.arange(-k, k + 1), indexing="ij")
    uv = np.stack([i + 0.5 * j, j * np.sqrt(3) / 2], -1).reshape(-1, 2) * spacing_A
    rho = np.linalg.norm(uv, axis=1)
    uv = uv[rho <= radius]
    rho = rho[rho <= radius]
    # per patch: a point ρ from the centre goes along the tangent direction, then down onto the surface; its
    # planar distance is corrected so that the chord from the centre is ρ (1 + ρ² / 24 R²), which splits the
    # change of a lattice distance between the radial (+ρ²/8R²) and the tangential (−ρ²/8R²) directions
    planar = (uv[None, :, :1] * e1[:, None] + uv[None, :, 1:] * e2[:, None]).reshape(-1, 3)
    start = np.repeat(centres, len(uv), axis=0)
    direction = planar / np.maximum(np.linalg.norm(planar, axis=1, keepdims=True), 1e-12)
    target = np.tile(rho * (1 + (rho / curvature) ** 2 / 24), len(centres))
    length = target.copy()
    for _ in range(3):
        site = closest_point_on_ellipsoid(start + direction * length[:, None], axes)
        chord = np.linalg.norm(site - start, axis=1)
        length = length * np.where(chord > 1e-9, target / np.maximum(chord, 1e-12), 1.0)
    site = closest_point_on_ellipsoid(start + direction * length[:, None], axes)
    patch = np.repeat(np.arange(len(centres)), len(uv))
    lattice_dir = np.repeat(e1, len(uv), axis=0)
    # keep each site in the patch of the nearest centre
    _, nearest = cKDTree(centres).query(site)
    keep = nearest == patch
    site, patch, lattice_dir = site[keep], patch[keep], lattice_dir[keep]
    # sites of different patches closer than the lattice allows: the later one of each pair removed
    pairs = cKDTree(site).query_pairs(0.98 * spacing_A, output_type="ndarray")
    clash = np.zeros(len(site), dtype=bool)
    if len(pairs):
        cross = patch[pairs[:, 0]] != patch[pairs[:, 1]]
        clash[pairs[cross, 1]] = True
    keep = ~clash & (rng.random(len(site)) >= gap_fraction)
    site, patch, lattice_dir = site[keep], patch[keep], lattice_dir[keep]
    normal = ellipsoid_normals(site, axes)
    x = lattice_dir - (lattice_dir * normal).sum(1, keepdims=True) * normal
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    rotations = np.stack([x, np.cross(normal, x), normal], axis=-1)  # columns: reference x, y, z
    return Lattice(site, rotations, normal, patch)


def to_tomogram(lattice: Lattice, centre_A: np.ndarray, rotation: np.ndarray) -> Lattice:
    """The lattice of a virion at ``centre_A`` turned by ``rotation`` (virion frame → tomogram)."""
    r = np.asarray(rotation, dtype=np.float64)
    return Lattice(
        lattice.positions_A @ r.T + np.asarray(centre_A),
        np.einsum("ab,kbc->kac", r, lattice.rotations),
        lattice.normals @ r.T,
        lattice.patch,
    )
