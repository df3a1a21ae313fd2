"""The data model validates units and invariants, and round-trips through JSON."""

import numpy as np
import pytest
from pydantic import ValidationError

from tomoforge.model import FSC, Acquisition, Coordinate3D, CTFTiltImage, TiltImage, TiltSeries


def test_acquisition_refuses_a_zero_pixel_size_naming_the_field():
    with pytest.raises(ValidationError, match="pixel_size_A"):
        Acquisition(pixel_size_A=0)
    schema = Acquisition.model_json_schema()["properties"]
    assert schema["pixel_size_A"]["unit"] == "Å/px" and schema["voltage_kV"]["unit"] == "kV"


def test_tilt_series_round_trips_through_json():
    ts = TiltSeries(
        name="TS_01",
        acquisition=Acquisition(pixel_size_A=1.35, tilt_axis_angle_deg=-95.0),
        tilt_images=[TiltImage(acquisition_order=i + 1, tilt_angle_deg=3.0 * i, excluded=i == 2) for i in range(3)],
    )
    again = TiltSeries.model_validate_json(ts.model_dump_json())
    assert again == ts and again.n_images == 3 and [t.acquisition_order for t in again.included()] == [1, 2]


def test_ctf_keeps_u_at_least_v():
    ctf = CTFTiltImage(acquisition_order=1, tilt_angle_deg=0, defocus_u_A=30000, defocus_v_A=29000)
    assert ctf.defocus_A == 29500 and ctf.astigmatism_A == 1000
    with pytest.raises(ValidationError, match="defocus_u_A .* < defocus_v_A"):
        CTFTiltImage(acquisition_order=1, tilt_angle_deg=0, defocus_u_A=1, defocus_v_A=2)


def test_coordinate_rotation_must_be_proper():
    angle = np.deg2rad(30)
    rz = [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    c = Coordinate3D(number=0, tomogram="t", x_A=1, y_A=2, z_A=3, rotation=rz)
    assert np.allclose(c.position_A, [1, 2, 3])
    with pytest.raises(ValidationError, match="not a proper rotation"):
        Coordinate3D(number=0, tomogram="t", x_A=0, y_A=0, z_A=0, rotation=np.diag([1, 1, -1]).tolist())


def test_fsc_resolution_interpolates_the_crossing():
    # falls from 0.5 at 0.1/A to 0.0 at 0.2/A: crosses 0.143 at 0.1 + 0.357/0.5 * 0.1 = 0.1714/A
    fsc = FSC(frequency_per_A=[0.0, 0.1, 0.2], correlation=[1.0, 0.5, 0.0])
    assert fsc.resolution_A(0.143) == pytest.approx(1 / 0.1714)
    assert fsc.resolution_A(0.5) == pytest.approx(10.0)  # reaches 0.5 exactly at 0.1/A
