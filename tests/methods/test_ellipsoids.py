import math

import numpy as np
import torch

from tomoforge.methods.ellipsoids import (
    add_ellipsoid_projection,
    add_ellipsoid_volume,
    ellipsoid_matrix,
    ellipsoid_outward_normal,
)
from tomoforge.methods.rotations import random_rotations


def test_sphere_chord_and_volume():
    img = torch.zeros(64, 64, dtype=torch.float64)
    a = ellipsoid_matrix(np.array([20.0, 20.0, 20.0]))
    add_ellipsoid_projection(img, 1.0, np.array([0.0, 0.0, 5.0]), a, 1.0)
    assert abs(float(img[32, 32]) - 40.0) < 1e-9
    assert abs(float(img[32, 32 + 12]) - 2 * math.sqrt(400 - 144)) < 1e-9
    assert abs(float(img.sum()) - 4 / 3 * math.pi * 20**3) < 0.01 * 4 / 3 * math.pi * 20**3
    half = torch.zeros(64, 64, dtype=torch.float64)
    add_ellipsoid_projection(half, 1.0, np.array([0.0, 0.0, 5.0]), a, 1.0, (5.0, math.inf))
    assert abs(float(half[32, 32]) - 20.0) < 1e-9


def test_volume_z_sum_equals_projection():
    rot = random_rotations(1, np.random.default_rng(0))[0]
    a = ellipsoid_matrix(np.array([15.0, 9.0, 6.0]), rot)
    c = np.array([3.3, -2.1, 1.7])
    vol = torch.zeros(40, 48, 48, dtype=torch.float64)
    add_ellipsoid_volume(vol, 1.5, c, a, 2.0)
    img = torch.zeros(48, 48, dtype=torch.float64)
    add_ellipsoid_projection(img, 1.5, c, a, 2.0)
    assert torch.allclose(vol.sum(0) * 1.5, img, atol=1e-9)
    assert abs(float(vol.sum()) * 1.5**3 - 2 * 4 / 3 * math.pi * 15 * 9 * 6) < 0.03 * 2 * 4 / 3 * math.pi * 810


def test_normals_of_sphere_are_radial():
    a = ellipsoid_matrix(np.array([10.0, 10.0, 10.0]))
    p = np.array([[10.0, 0, 0], [0, 0, -10.0]])
    assert np.allclose(ellipsoid_outward_normal(a, np.zeros(3), p), [[1, 0, 0], [0, 0, -1]])
