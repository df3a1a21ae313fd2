"""Acquisition: the microscope and detector settings a tilt series was recorded with."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from tomoforge.model.base import quantity


class Acquisition(BaseModel):
    """Microscope settings shared by the images of one tilt series (units in field metadata)."""

    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    voltage_kV: float = quantity(300.0, unit="kV", gt=0, description="acceleration voltage")
    spherical_aberration_mm: float = quantity(2.7, unit="mm", ge=0, description="spherical aberration Cs")
    amplitude_contrast: float = quantity(0.1, unit="fraction", ge=0, lt=1, description="amplitude contrast")
    pixel_size_A: float = quantity(..., unit="Å/px", gt=0, description="pixel size of the images")
    tilt_axis_angle_deg: float = quantity(
        0.0, unit="deg", description="tilt axis from the image Y axis, counter-clockwise (SerialEM/IMOD)"
    )
    dose_per_tilt_e_A2: float = quantity(0.0, unit="e/Å²", ge=0, description="exposure of one tilt image")
    magnification: float = quantity(0.0, unit="x", ge=0, description="nominal magnification")
    gain_file: str = quantity("", description="gain reference to multiply raw frames by ('' if none)")
