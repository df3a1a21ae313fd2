"""Euler angles: hand-derived case, agreement with RELION 5's own scipy conversion, round trips,
Dynamo <-> RELION consistency (eulerangles' convert_eulers, as teamtomo's dynamo2relion)."""

import eulerangles
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tomoforge.io.euler import (
    dynamo_euler_to_matrix,
    matrix_to_dynamo_euler,
    matrix_to_relion_euler,
    relion_euler_to_matrix,
)


@pytest.fixture
def rotations():
    return Rotation.random(200, random_state=1).as_matrix()


def test_rot_90_by_hand():
    R = relion_euler_to_matrix(90, 0, 0)
    np.testing.assert_allclose(R, [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], atol=1e-12)
    # the reference x axis lands on tomogram -y
    np.testing.assert_allclose(R @ [1, 0, 0], [0, -1, 0], atol=1e-12)


def test_tilt_90_by_hand():
    R = relion_euler_to_matrix(0, 90, 0)  # transpose of Ry(90)
    np.testing.assert_allclose(R @ [0, 0, 1], [-1, 0, 0], atol=1e-12)


def test_matches_relion5_python(rotations):
    # RELION 5 get_particle_poses: eulers = Rotation.from_matrix(M).inv().as_euler('ZYZ')
    eulers = Rotation.from_matrix(rotations).inv().as_euler("ZYZ", degrees=True)
    np.testing.assert_allclose(relion_euler_to_matrix(*eulers.T), rotations, atol=1e-10)


def test_relion_round_trip(rotations):
    eulers = matrix_to_relion_euler(rotations)
    assert eulers.shape == (200, 3)
    np.testing.assert_allclose(relion_euler_to_matrix(*eulers.T), rotations, atol=1e-10)


def test_dynamo_round_trip_and_relion_consistency(rotations):
    dyn = matrix_to_dynamo_euler(rotations)
    np.testing.assert_allclose(dynamo_euler_to_matrix(*dyn.T), rotations, atol=1e-10)
    relion = eulerangles.convert_eulers(dyn, source_meta="dynamo", target_meta="relion")
    np.testing.assert_allclose(relion_euler_to_matrix(*relion.T), rotations, atol=1e-10)
    # closed form: rot = narot - 90, psi = tdrot + 90
    np.testing.assert_allclose(
        dynamo_euler_to_matrix(30, 40, 50), relion_euler_to_matrix(50 - 90, 40, 30 + 90), atol=1e-12
    )


def test_shapes():
    assert relion_euler_to_matrix(1.0, 2.0, 3.0).shape == (3, 3)
    assert relion_euler_to_matrix(np.zeros((2, 4)), 0, 0).shape == (2, 4, 3, 3)
    with pytest.raises(ValueError):
        matrix_to_relion_euler(np.eye(2))


def test_every_rotation_comes_back_from_its_euler_angles():
    """eulerangles alone gets about 1 in 10,000 wrong (this Dynamo triple from dynamotable's t_complex.tbl among
    them); the conversion checks each and takes scipy's angles where needed."""
    from tomoforge.io.euler import (
        dynamo_euler_to_matrix,
        matrix_to_dynamo_euler,
        matrix_to_relion_euler,
        relion_euler_to_matrix,
    )
    from tomoforge.methods.rotations import random_rotations

    rotations = np.concatenate(
        [random_rotations(50_000, np.random.default_rng(0)), dynamo_euler_to_matrix(-139.17, 168.87, -179.99)[None]]
    )
    again = relion_euler_to_matrix(*matrix_to_relion_euler(rotations).T)
    assert np.abs(again - rotations).max() < 1e-9
    again = dynamo_euler_to_matrix(*matrix_to_dynamo_euler(rotations).T)
    assert np.abs(again - rotations).max() < 1e-9
