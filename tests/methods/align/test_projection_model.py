"""The free gauge of an alignment: a common translation and a rotation about the tilt axis."""

import numpy as np

from tomoforge.methods.align.projection_model import ProjectionModel, reprojection_difference, rms
from tomoforge.methods.rotations import rotation_about_y


def test_a_tilt_offset_with_the_specimen_turned_back_reprojects_the_same():
    rng = np.random.default_rng(2)
    tilts = np.arange(-60, 61, 3.0)
    points = rng.uniform(-800, 800, (20, 3))
    truth = ProjectionModel(tilts, 85.0, rng.normal(0, 50, (len(tilts), 2)))
    # the same specimen turned by 1.3° about Y and moved: tilts + 1.3°, shifts of the moved centre
    moved = np.array([120.0, -40.0, 75.0])
    other = ProjectionModel(tilts + 1.3, 85.0, truth.project(moved)[:, 0])
    turned = (points - moved) @ rotation_about_y(-1.3).T
    assert rms(other.project(turned) - truth.project(points)) < 1e-6
    assert rms(reprojection_difference(other, truth, points)) > 5.0  # a translation alone does not remove it
    assert rms(reprojection_difference(other, truth, points, remove_tilt_offset=True)) < 1e-3
