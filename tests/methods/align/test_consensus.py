"""Alignment consensus with known perturbations: the differences come back exactly."""

import numpy as np
import pytest

from tests.methods.align.synthetic import true_model
from tomoforge.methods.align.consensus import compare_alignments, point_grid, summarise, wrap_deg
from tomoforge.methods.align.projection_model import ProjectionModel

TILTS = np.arange(-60, 61, 6.0)


def test_known_perturbations_come_back_exactly():
    rng = np.random.default_rng(4)
    a = true_model(rng, TILTS)
    pts = point_grid(1000.0, 150.0)
    assert pts.shape == (75, 3)
    # 1) a common 3D translation of the specimen: shifts differ, reprojection does not.
    t = np.array([30.0, -20.0, 50.0])
    moved = ProjectionModel(a.tilt_deg, a.z_rot_deg, a.shift_A + a.matrices() @ t)
    r = compare_alignments(moved, a, pts, pixel_size_A=2.0)
    assert np.allclose(np.c_[r["shift_x_A"], r["shift_y_A"]], a.matrices() @ t, atol=1e-9)
    assert np.allclose(r["reprojection_rms_A"], 0.0, atol=1e-9)
    # 2) per-view angle changes: the angle differences exactly, reprojection only where changed.
    z_rot, tilt = a.z_rot_deg.copy(), a.tilt_deg.copy()
    z_rot[3] += 0.5
    tilt[7] -= 1.25
    b = ProjectionModel(tilt, z_rot, a.shift_A)
    r = compare_alignments(b, a, pts)
    expect_rot, expect_tilt = np.zeros(len(TILTS)), np.zeros(len(TILTS))
    expect_rot[3], expect_tilt[7] = 0.5, -1.25
    assert np.allclose(r["z_rot_deg"], expect_rot, atol=1e-12) and np.allclose(r["tilt_deg"], expect_tilt, atol=1e-12)
    assert np.allclose(r["shift_A"], 0.0)
    # without a translation to remove, a rotation by 0.5° about the image centre moves a point at
    # in-plane radius ρ by 2ρ sin(0.25°)
    one = compare_alignments(
        ProjectionModel([0.0], [0.5], [[0.0, 0.0]]),
        ProjectionModel([0.0], [0.0], [[0.0, 0.0]]),
        np.array([[100.0, 0.0, 0.0], [-100.0, 0.0, 0.0]]),
    )
    assert one["reprojection_rms_A"][0] == pytest.approx(200.0 * np.sin(np.deg2rad(0.25)), rel=1e-12)
    s = summarise(r)
    assert s["max_z_rot_deg"] == pytest.approx(0.5) and s["max_tilt_deg"] == pytest.approx(1.25)
    assert s["worst_view"] in (3, 7)


def test_rotation_differences_wrap():
    assert np.allclose(wrap_deg([359.0, -181.0, 180.0, -180.0]), [-1.0, 179.0, 180.0, 180.0])
