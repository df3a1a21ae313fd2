"""Physical ranges are declared once (model.quantities) and refuse nan, inf and absurd values everywhere."""

import math

import numpy as np
import pytest
from pydantic import ValidationError

from tomoforge.errors import describe_validation_error
from tomoforge.model import Acquisition, CTFTiltImage, TiltImage, Tomogram
from tomoforge.model.quantities import (
    DOSE_PER_TILT,
    PIXEL_SIZE,
    TILT_ANGLE,
    PhysicalRange,
)


def _refusal(cls, **fields) -> str:
    with pytest.raises(ValidationError) as caught:
        cls(**fields)
    return describe_validation_error(caught.value)


@pytest.mark.parametrize(
    "field, value, rule",
    [
        ("pixel_size_A", math.inf, "pixel_size_A: inf must be a finite number from 0.1 to 100 Å/px (pixel size)"),
        ("pixel_size_A", math.nan, "pixel_size_A: nan must be a finite number from 0.1 to 100 Å/px"),
        ("voltage_kV", 1e308, "voltage_kV: 1e+308 must be a finite number from 30 to 1000 kV"),
        ("dose_per_tilt_e_A2", 1e30, "dose_per_tilt_e_A2: 1e+30 must be a finite number from 0 to 1000 e/Å²"),
        ("spherical_aberration_mm", 50.0, "spherical_aberration_mm: 50.0 must be a finite number from 0 to 10 mm"),
        ("amplitude_contrast", 1.0, "amplitude_contrast: 1.0 must be a finite number ≥ 0 and < 1"),
        ("tilt_axis_angle_deg", math.inf, "tilt_axis_angle_deg: inf must be a finite number"),
    ],
)
def test_acquisition_refuses_nan_inf_and_absurd_values_with_the_range(field, value, rule):
    values = {"pixel_size_A": 1.0, field: value}
    assert rule in _refusal(Acquisition, **values)


def test_tilt_images_ctf_and_tomograms_refuse_them_too():
    assert "tilt_angle_deg: nan must be a finite number from -90 to 90 °" in _refusal(
        TiltImage, acquisition_order=1, tilt_angle_deg=math.nan
    )
    assert "accumulated_dose_e_A2: inf" in _refusal(
        TiltImage, acquisition_order=1, tilt_angle_deg=0, accumulated_dose_e_A2=math.inf
    )
    assert "frame_shifts_A.0.1" in _refusal(
        TiltImage, acquisition_order=1, tilt_angle_deg=0, frame_shifts_A=[(0.0, math.nan)]
    )  # every float of an item is finite
    assert "defocus_u_A: nan" in _refusal(
        CTFTiltImage, acquisition_order=1, tilt_angle_deg=0, defocus_u_A=math.nan, defocus_v_A=1.0
    )
    assert "pixel_size_A: 0.0 must be a finite number from 0.1 to 1000 Å/voxel" in _refusal(
        Tomogram, name="t", file="t.mrc", pixel_size_A=0.0, size_xyz=(1, 1, 1)
    )
    image = TiltImage(acquisition_order=1, tilt_angle_deg=0)
    with pytest.raises(ValidationError, match="must be a finite number"):
        image.dose_e_A2 = math.inf  # assignment is validated as well


def test_a_narrower_bound_of_one_field_keeps_its_own_message():
    from tomoforge.protocols.ctf.estimate import CTFEstimationParams

    assert "defocus_min_A: -5.0 must be > 0" in _refusal(CTFEstimationParams, defocus_min_A=-5.0)
    assert "defocus_min_A: inf must be a finite number from -1e+06 to 1e+06 Å" in _refusal(
        CTFEstimationParams, defocus_min_A=math.inf
    )


def test_ranges_are_in_the_json_schema_and_the_mask_agrees_with_contains():
    schema = Acquisition.model_json_schema()["properties"]["pixel_size_A"]
    assert (schema["minimum"], schema["maximum"], schema["unit"]) == (0.1, 100.0, "Å/px")
    values = np.array([-91, -90, 0, 90, 90.5, np.nan, np.inf, -np.inf])
    assert TILT_ANGLE.mask(values).tolist() == [TILT_ANGLE.contains(v) for v in values]
    assert TILT_ANGLE.mask(values).tolist() == [False, True, True, True, False, False, False, False]
    assert DOSE_PER_TILT.problem(3.0) is None and PIXEL_SIZE.problem("abc") is not None
    opened = PhysicalRange("x", "", 0.0, 1.0, low_open=True, high_open=True)
    assert not opened.contains(0.0) and opened.contains(0.5) and not opened.contains(1.0)
    assert opened.describe() == "a finite number > 0 and < 1 (x)"
