"""The virion lattice: sites on the ellipsoid, axes along the normal, lattice distances as requested."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from tomoforge.methods.rotations import random_rotations
from tomoforge.simulate.lattice import closest_point_on_ellipsoid, ellipsoid_lattice, ellipsoid_normals, to_tomogram

SPACING = 78.0


def _distance_to_ellipsoid(points, axes):
    """Independent check: distance by a dense search over the surface then a local refinement."""
    u = np.linspace(0, np.pi, 721)
    v = np.linspace(-np.pi, np.pi, 1441)
    uu, vv = np.meshgrid(u, v, indexing="ij")
    surface = np.stack([np.sin(uu) * np.cos(vv), np.sin(uu) * np.sin(vv), np.cos(uu)], -1).reshape(-1, 3) * axes
    d, _ = cKDTree(surface).query(points)
    return d


@pytest.fixture(scope="module", params=[0, 1])
def virion(request):
    rng = np.random.default_rng(request.param)
    axes = np.array([560.0, 500.0, 470.0]) - 40.0  # a membrane mid-surface moved in by 40 Å
    return axes, ellipsoid_lattice(axes, SPACING, rng, gap_fraction=0.1)


def test_closest_point_lies_on_the_surface_along_the_normal():
    axes = np.array([520.0, 460.0, 430.0])
    rng = np.random.default_rng(4)
    points = rng.normal(size=(200, 3)) * 400
    q = closest_point_on_ellipsoid(points, axes)
    np.testing.assert_allclose(((q / axes) ** 2).sum(1), 1.0, atol=1e-12)
    offset = points - q  # the closest point's offset is along its normal
    cross = np.cross(offset, ellipsoid_normals(q, axes))
    assert np.abs(cross).max() < 1e-6 * np.abs(offset).max()
    np.testing.assert_allclose(closest_point_on_ellipsoid(np.array([[600.0, 0, 0]]), axes), [[520.0, 0, 0]])


def test_sites_lie_on_the_surface_with_their_axis_along_the_normal(virion):
    axes, lattice = virion
    assert len(lattice.positions_A) > 250
    coarse = _distance_to_ellipsoid(lattice.positions_A, axes)
    assert coarse.max() < 1.5  # the dense surface grid itself is ~0.9 Å apart
    algebraic = np.abs(((lattice.positions_A / axes) ** 2).sum(1) - 1) / np.linalg.norm(
        2 * lattice.positions_A / axes**2, axis=1
    )
    assert algebraic.max() < 1.0  # distance to the surface, first order (Å)
    axis = lattice.rotations[:, :, 2]  # R · z
    angle = np.degrees(np.arccos(np.clip((axis * ellipsoid_normals(lattice.positions_A, axes)).sum(1), -1, 1)))
    assert angle.max() < 0.5
    np.testing.assert_allclose(np.linalg.det(lattice.rotations), 1.0, atol=1e-12)


def test_lattice_distances_match_the_spacing_and_the_in_plane_angle_follows_the_lattice(virion):
    axes, lattice = virion
    p = lattice.positions_A
    pairs = cKDTree(p).query_pairs(1.3 * SPACING, output_type="ndarray")
    d = np.linalg.norm(p[pairs[:, 0]] - p[pairs[:, 1]], axis=1)
    same = lattice.patch[pairs[:, 0]] == lattice.patch[pairs[:, 1]]
    assert same.sum() > 300
    assert np.abs(d[same] / SPACING - 1).max() < 0.02  # lattice neighbours: spacing ± 2 %
    assert d.min() > 0.98 * SPACING  # no two assemblies closer than the lattice allows
    # neighbours within a patch point along a multiple of 60° from the site's reference x axis
    i, j = pairs[same, 0], pairs[same, 1]
    step = p[j] - p[i]
    x, y = lattice.rotations[i, :, 0], lattice.rotations[i, :, 1]
    angle = np.degrees(np.arctan2((step * y).sum(1), (step * x).sum(1)))
    off = (angle + 30.0) % 60.0 - 30.0
    assert np.abs(off).max() < 2.0


def test_gaps_and_moving_to_the_tomogram():
    axes = np.array([520.0, 460.0, 430.0])
    full = ellipsoid_lattice(axes, SPACING, np.random.default_rng(7), gap_fraction=0.0)
    holey = ellipsoid_lattice(axes, SPACING, np.random.default_rng(7), gap_fraction=0.3)
    assert len(holey.positions_A) / len(full.positions_A) == pytest.approx(0.7, abs=0.06)
    rotation = random_rotations(1, np.random.default_rng(8))[0]
    moved = to_tomogram(full, np.array([100.0, -50.0, 20.0]), rotation)
    np.testing.assert_allclose(moved.positions_A, full.positions_A @ rotation.T + [100.0, -50.0, 20.0])
    np.testing.assert_allclose(moved.rotations[:, :, 2], moved.normals, atol=1e-12)
