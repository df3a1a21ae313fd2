"""Particle directions against analytic normals: a fixed direction, fitted ellipsoids, nearest surface points."""

from __future__ import annotations

import numpy as np

from tomoforge.methods.picking.normals import (
    angle_between_deg,
    ellipsoid_normals,
    fit_ellipsoids,
    nearest_normals,
    particle_directions,
)
from tomoforge.methods.rotations import random_rotations, rotation_about_axis, rotation_about_x, rotation_aligning_z_to


def test_a_rotation_about_x_tilts_the_direction_by_its_angle():
    angles = np.array([0.0, 10.0, 45.0, 90.0, 135.0, 180.0])
    rotations = np.stack([rotation_about_x(a) for a in angles])
    assert np.allclose(angle_between_deg(particle_directions(rotations), [0, 0, 1]), angles, atol=1e-9)
    assert np.allclose(
        angle_between_deg(particle_directions(rotations), [0, 0, 1], either_sign=True),
        [0, 10, 45, 90, 45, 0],
        atol=1e-9,
    )


def ellipsoid_picks(rng, semi_axes, rotation, centre, n):
    """n points on the ellipsoid and their analytic outward normals A (x − c) / |A (x − c)|."""
    u = rng.normal(size=(n, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    points = centre + (u * semi_axes) @ rotation.T
    matrix = rotation @ np.diag(1.0 / np.asarray(semi_axes) ** 2) @ rotation.T
    normals = (points - centre) @ matrix.T
    return points, normals / np.linalg.norm(normals, axis=1, keepdims=True)


def test_fitted_ellipsoid_normals_give_the_tilts_put_on_the_picks():
    rng = np.random.default_rng(3)
    groups, points, normals = [], [], []
    for g, (axes, centre) in enumerate([((400, 300, 250), (0, 0, 0)), ((250, 250, 250), (3000, -1000, 200))]):
        p, nrm = ellipsoid_picks(rng, np.array(axes, float), random_rotations(1, rng)[0], np.array(centre, float), 60)
        points.append(p), normals.append(nrm), groups.append(np.full(60, g))
    points, normals, groups = np.concatenate(points), np.concatenate(normals), np.concatenate(groups)
    matrices, centres, ok = fit_ellipsoids(points, groups)
    assert ok.all()
    assert np.allclose(centres, [[0, 0, 0], [3000, -1000, 200]], atol=1e-6)
    fitted = ellipsoid_normals(points, matrices, centres, groups)
    assert np.allclose(fitted, normals, atol=1e-8)
    # each pick's z axis tilted from its normal by a known angle about a random perpendicular axis
    tilts = rng.uniform(0, 60, len(points))
    rotations = []
    for normal, tilt in zip(normals, tilts):
        axis = np.cross(normal, rng.normal(size=3))
        rotations.append(rotation_about_axis(axis, tilt) @ rotation_aligning_z_to(normal))
    angles = angle_between_deg(particle_directions(np.stack(rotations)), fitted)
    assert np.allclose(angles, tilts, atol=1e-5)


def test_too_few_points_or_a_flat_group_is_no_ellipsoid():
    rng = np.random.default_rng(0)
    flat = np.c_[rng.uniform(0, 100, (30, 2)), np.zeros(30)]
    _, _, ok = fit_ellipsoids(np.concatenate([flat, rng.normal(size=(5, 3))]), np.repeat([0, 1], [30, 5]))
    assert ok.tolist() == [False, False]


def test_the_nearest_surface_point_of_the_same_tomogram_gives_the_normal():
    surface = np.array([[0.0, 0, 0], [100, 0, 0], [0.0, 0, 0]])
    normals = np.array([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]])
    got, distance = nearest_normals(
        np.array([[90.0, 0, 5], [10, 0, 0], [1, 0, 0]]),
        surface,
        normals,
        groups=np.array([0, 0, 1]),
        surface_groups=np.array([0, 0, 1]),
    )
    assert got.tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]
    assert np.allclose(distance, [np.hypot(10, 5), 10, 1])
