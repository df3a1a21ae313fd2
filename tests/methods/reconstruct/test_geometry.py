"""The one projection model (RELION 5, CONVENTIONS.md "Tilt series geometry") and its one builder from a tilt series."""

from __future__ import annotations

import numpy as np
import pytest

from tomoforge.methods.align.projection_model import ProjectionModel
from tomoforge.model import Acquisition, TiltImage, TiltSeries


def test_a_point_above_the_specimen_moves_to_plus_x_at_a_positive_tilt():
    """Hand: with ZRot 0 the image frame is the tilt-axis frame; z > 0 at +30° lands at +x (x = sin 30° · z)."""
    model = ProjectionModel([30.0, -30.0, 0.0], 0.0, np.zeros((3, 2)))
    uv = model.project([0.0, 0.0, 100.0])[:, 0]
    assert uv[0] == pytest.approx([50.0, 0.0]) and uv[1] == pytest.approx([-50.0, 0.0])
    assert uv[2] == pytest.approx([0.0, 0.0])


def test_a_tilt_axis_angle_of_plus_10_is_counter_clockwise_from_image_y():
    """A point on the tilt axis (specimen y) projects along the axis: +10° turns it from +Y towards −X
    (counter-clockwise with x right, y up), whatever the tilt."""
    model = ProjectionModel([0.0, 40.0], 10.0, np.zeros((2, 2)))
    uv = model.project([0.0, 100.0, 0.0])[:, 0]
    a = np.deg2rad(10.0)
    assert np.allclose(uv, [[-100 * np.sin(a), 100 * np.cos(a)]] * 2)
    assert uv[0, 0] < 0 < uv[0, 1]


def test_the_specimen_centre_lands_at_the_shift_and_magnification_scales_about_it():
    shifts = np.array([[12.5, -7.0], [-3.0, 40.0]])
    model = ProjectionModel([20.0, -50.0], [84.0, 86.0], shifts, x_tilt_deg=[1.0, -2.0], magnification=[1.0, 1.1])
    assert np.allclose(model.project(np.zeros(3))[:, 0], shifts)
    plain = ProjectionModel([20.0, -50.0], [84.0, 86.0], shifts, x_tilt_deg=[1.0, -2.0])
    point = np.array([100.0, -200.0, 30.0])
    assert np.allclose(model.project(point)[1, 0] - shifts[1], 1.1 * (plain.project(point)[1, 0] - shifts[1]))


def test_offsets_subset_and_the_reconstruction_limits():
    model = ProjectionModel([-30.0, 0.0, 30.0], 85.0, np.zeros((3, 2)))
    moved = model.with_offsets(tilt_offset_deg=1.5, axis_offset_deg=-2.0)
    assert np.allclose(moved.tilt_deg, [-28.5, 1.5, 31.5]) and np.allclose(moved.z_rot_deg, 83.0)
    assert np.allclose(model.subset(np.array([True, False, True])).tilt_deg, [-30.0, 30.0])
    model.check_reconstructable()
    with pytest.raises(ValueError, match="tilt angles"):
        ProjectionModel([0.0, 89.5], 0.0, np.zeros((2, 2))).check_reconstructable()
    with pytest.raises(ValueError, match="x-tilts"):
        ProjectionModel([0.0], 0.0, [[0.0, 0.0]], x_tilt_deg=[50.0]).check_reconstructable()
    with pytest.raises(ValueError, match="magnification"):
        ProjectionModel([0.0], 0.0, [[0.0, 0.0]], magnification=[1.02]).check_reconstructable()


def tilt_series(interpolated: bool = False) -> TiltSeries:
    """Three views: the second refined (YTilt, ZRot, XTilt, shifts), the third excluded."""
    images = [
        TiltImage(acquisition_order=2, tilt_angle_deg=-3.0, x_shift_A=5.0, y_shift_A=-6.0),
        TiltImage(
            acquisition_order=1,
            tilt_angle_deg=0.0,
            y_tilt_deg=0.4,
            z_rot_deg=-93.0,
            x_tilt_deg=0.7,
            x_shift_A=1.5,
            y_shift_A=2.5,
        ),
        TiltImage(acquisition_order=3, tilt_angle_deg=3.0, excluded=True, z_rot_deg=-96.0),
    ]
    return TiltSeries(
        name="TS_01",
        acquisition=Acquisition(pixel_size_A=1.35, tilt_axis_angle_deg=-95.0),
        tilt_images=images,
        interpolated=interpolated,
    )


def test_the_builder_fills_unset_angles_with_the_nominal_ones():
    model = tilt_series().projection_model()
    assert model.n_views == 2  # the excluded view left out
    assert np.allclose(model.tilt_deg, [-3.0, 0.4])  # YTilt unset → the nominal tilt
    assert np.allclose(model.z_rot_deg, [-95.0, -93.0])  # ZRot unset → the acquisition's tilt axis
    assert np.allclose(model.x_tilt_deg, [0.0, 0.7]) and np.allclose(model.shift_A, [[5.0, -6.0], [1.5, 2.5]])
    assert np.allclose(model.magnification, 1.0)
    override = tilt_series().projection_model("all", tilt_axis_deg=80.0)
    assert np.allclose(override.z_rot_deg, [80.0, -93.0, -96.0])  # only the unset ZRot takes the override


def test_the_builder_keeps_the_order_asked_for():
    ts = tilt_series()
    model = ts.projection_model(sorted(ts.tilt_images, key=lambda t: t.acquisition_order))
    assert np.allclose(model.tilt_deg, [0.4, -3.0, 3.0]) and np.allclose(model.z_rot_deg, [-93.0, -95.0, -96.0])


def test_an_interpolated_series_has_no_rotation_and_no_shift_left():
    model = tilt_series(interpolated=True).projection_model()
    assert np.allclose(model.z_rot_deg, 0.0) and np.allclose(model.shift_A, 0.0)
    assert np.allclose(model.tilt_deg, [-3.0, 0.4]) and np.allclose(model.x_tilt_deg, [0.0, 0.7])


def test_tilt_series_to_model_to_tilt_series_round_trips():
    """The per-view values the model holds write back unchanged (what the align protocols store)."""
    ts = tilt_series()
    model = ts.projection_model("all")
    back = ts.model_copy(
        update={
            "tilt_images": [
                t.model_copy(
                    update={
                        "y_tilt_deg": float(model.tilt_deg[i]),
                        "z_rot_deg": float(model.z_rot_deg[i]),
                        "x_tilt_deg": float(model.x_tilt_deg[i]),
                        "x_shift_A": float(model.shift_A[i, 0]),
                        "y_shift_A": float(model.shift_A[i, 1]),
                    }
                )
                for i, t in enumerate(ts.tilt_images)
            ]
        }
    )
    again = back.projection_model("all")
    for name in ("tilt_deg", "z_rot_deg", "x_tilt_deg", "shift_A", "magnification"):
        assert np.array_equal(getattr(again, name), getattr(model, name))
