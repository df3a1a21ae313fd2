import numpy as np

from tomoforge.methods.rotations import (
    random_rotations,
    rotation_about_axis,
    rotation_about_y,
    rotation_about_z,
    rotation_aligning_z_to,
    tilt_projection_matrix,
    xyz_to_zyx_matrix,
)


def test_random_rotations_are_rotations_and_uniform():
    r = random_rotations(2000, np.random.default_rng(1))
    assert np.allclose(r @ r.transpose(0, 2, 1), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(r), 1)
    # uniform on SO(3): the rotated z axis is uniform on the sphere, mean ≈ 0, <z²> = 1/3
    z = r[:, :, 2]
    assert np.all(np.abs(z.mean(0)) < 0.06)
    assert abs((z[:, 2] ** 2).mean() - 1 / 3) < 0.03


def test_handedness_and_axis():
    assert np.allclose(rotation_about_z(90) @ [1, 0, 0], [0, 1, 0])
    assert np.allclose(rotation_about_y(90) @ [0, 0, 1], [1, 0, 0])  # x' = cos·x + sin·z
    assert np.allclose(rotation_about_axis([0, 0, 1], 90), rotation_about_z(90))
    n = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    assert np.allclose(rotation_aligning_z_to(n) @ [0, 0, 1], n)
    assert np.allclose(rotation_aligning_z_to([0, 0, -1]) @ [0, 0, 1], [0, 0, -1])
    assert np.allclose(tilt_projection_matrix(0, 85), rotation_about_z(85))
    assert np.allclose(xyz_to_zyx_matrix(rotation_about_z(90)) @ [0, 0, 1], [0, 1, 0])  # zyx: x → y
