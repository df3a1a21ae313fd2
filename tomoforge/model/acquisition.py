"""Acquisition: the microscope and detector settings a tilt series was recorded with."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from tomoforge.model.base import quantity
from tomoforge.model.quantities import (
    AmplitudeContrast,
    AngleDeg,
    DosePerTiltEA2,
    Magnification,
    PixelSizeA,
    SphericalAberrationMM,
    VoltageKV,
)


class Acquisition(BaseModel):
    """Microscope settings shared by the images of one tilt series (units in field metadata)."""

    model_config = ConfigDict(validate_assignment=True, extra="forbid", allow_inf_nan=False)

    voltage_kV: VoltageKV = quantity(300.0, unit="kV", description="acceleration voltage")
    spherical_aberration_mm: SphericalAberrationMM = quantity(2.7, unit="mm", description="spherical aberration Cs")
    amplitude_contrast: AmplitudeContrast = quantity(0.1, unit="fraction", description="amplitude contrast")
    pixel_size_A: PixelSizeA = quantity(..., unit="Å/px", description="pixel size of the images")
    tilt_axis_angle_deg: AngleDeg = quantity(
        0.0, unit="deg", description="tilt axis from the image Y axis, counter-clockwise (SerialEM/IMOD)"
    )
    dose_per_tilt_e_A2: DosePerTiltEA2 = quantity(0.0, unit="e/Å²", description="exposure of one tilt image")
    magnification: Magnification = quantity(0.0, unit="x", description="nominal magnification")
    gain_file: str = quantity("", description="gain reference to multiply raw frames by ('' if none)")
