"""Physical ranges of the quantities tomoforge stores, declared once.

Each range is a :class:`PhysicalRange`; its ``.type`` is an annotated float for pydantic (finite, within
the bounds, the bounds also in the JSON schema) used by the model fields, by the protocols' parameters
carrying the same quantity and so by ``--set``; importers call ``.problem(value)`` on what a file holds
and name the file, line and field with the answer. One definition, one rule, one message::

    pixel_size_A: inf must be a finite number from 0.1 to 100 Å/px (pixel size)

The bounds are physical plausibility, not what a program accepts: a pixel size of 0.1–100 Å covers
super-resolution frames to heavily binned tomograms; 30–1000 kV every TEM; Cs 0 (corrected) to 10 mm;
a dose of 1000 e/Å² per tilt is far beyond any tilt series. Defocus is underfocus positive (Å), as in
CTFFIND and RELION; an mdoc's ``Defocus`` (µm, underfocus negative) is converted before it is checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import Field, ValidationError, WrapValidator

#: pydantic error types that mean "outside the range" (answered with the whole range)
_RANGE_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"})


def _number(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class PhysicalRange:
    """A finite interval of a physical quantity, with its name and unit for messages.

    Parameters
    ----------
    label : str
        What the quantity is, in words ("pixel size").
    unit : str
        Its unit ("Å/px"); '' for a pure number.
    low, high : float or None
        The bounds (None: unbounded on that side, still finite).
    low_open, high_open : bool
        Whether the bound itself is excluded (``> low`` rather than ``≥ low``).
    """

    label: str
    unit: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        """Whether ``value`` is a finite number within the range."""
        try:
            x = float(value)
        except (TypeError, ValueError):
            return False
        if not math.isfinite(x):
            return False
        if self.low is not None and (x < self.low or (self.low_open and x == self.low)):
            return False
        return not (self.high is not None and (x > self.high or (self.high_open and x == self.high)))

    def mask(self, values: Any) -> np.ndarray:
        """Element-wise ``contains`` of an array (non-finite values are outside)."""
        x = np.asarray(values, dtype=float)
        inside: np.ndarray = np.isfinite(x)
        if self.low is not None:
            inside &= (x > self.low) if self.low_open else (x >= self.low)
        if self.high is not None:
            inside &= (x < self.high) if self.high_open else (x <= self.high)
        return inside

    def describe(self) -> str:
        """The rule in words: ``a finite number from 0.1 to 100 Å/px (pixel size)``."""
        unit = f" {self.unit}" if self.unit else ""
        low, high = self.low, self.high
        if low is not None and high is not None and not (self.low_open or self.high_open):
            text = f"from {_number(low)} to {_number(high)}{unit}"
        else:
            parts = []
            if low is not None:
                parts.append(f"{'>' if self.low_open else '≥'} {_number(low)}")
            if high is not None:
                parts.append(f"{'<' if self.high_open else '≤'} {_number(high)}")
            text = " and ".join(parts) + unit
        return f"a finite number {text} ({self.label})" if text else f"a finite number ({self.label})"

    def problem(self, value: Any) -> str | None:
        """None if ``value`` is within the range, else ``"must be a finite number from … (label)"``."""
        return None if self.contains(value) else f"must be {self.describe()}"

    def _wrap(self, value: Any, handler: Any) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            # a value within this range refused by a narrower bound of the field keeps pydantic's message
            if any(e["type"] in _RANGE_ERRORS for e in exc.errors()) and not self.contains(value):
                raise ValueError(f"must be {self.describe()}") from None
            raise

    @property
    def type(self) -> Any:
        """``Annotated[float, ...]``: finite, within the bounds; a failure states the whole range."""
        bounds: dict[str, Any] = {}  # gt/ge/lt/le, only those that apply
        if self.low is not None:
            bounds["gt" if self.low_open else "ge"] = self.low
        if self.high is not None:
            bounds["lt" if self.high_open else "le"] = self.high
        return Annotated[float, Field(allow_inf_nan=False, **bounds), WrapValidator(self._wrap)]


PIXEL_SIZE = PhysicalRange("pixel size", "Å/px", 0.1, 100.0)
VOXEL_SIZE = PhysicalRange("voxel size", "Å/voxel", 0.1, 1000.0)
VOLTAGE = PhysicalRange("acceleration voltage", "kV", 30.0, 1000.0)
SPHERICAL_ABERRATION = PhysicalRange("spherical aberration Cs", "mm", 0.0, 10.0)
AMPLITUDE_CONTRAST = PhysicalRange("amplitude contrast", "", 0.0, 1.0, high_open=True)
DOSE_PER_TILT = PhysicalRange("dose per tilt image", "e/Å²", 0.0, 1000.0)
ACCUMULATED_DOSE = PhysicalRange("accumulated dose", "e/Å²", 0.0, 100_000.0)
TILT_ANGLE = PhysicalRange("tilt angle", "°", -90.0, 90.0)
TILT_STEP = PhysicalRange("tilt step between sections", "°", -90.0, 90.0)
ANGLE = PhysicalRange("angle", "°", -3600.0, 3600.0)
DEFOCUS = PhysicalRange("defocus, underfocus positive", "Å", -1e6, 1e6)
BEAD_DIAMETER = PhysicalRange("bead diameter", "nm", 0.0, 1000.0, low_open=True)
LENGTH = PhysicalRange("length", "Å", -1e9, 1e9)
RESOLUTION = PhysicalRange("resolution (0: unknown)", "Å", 0.0, 1e6)
MAGNIFICATION = PhysicalRange("magnification", "x", 0.0, 1e8)
SIZE_PX = PhysicalRange("size", "px", 1.0, 1e6)
FRAME_COUNT = PhysicalRange("number of frames", "", 0.0, 1e6)
VIEW_NUMBER = PhysicalRange("view number", "", 0.0, 1e5)
SCORE = PhysicalRange("score", "", -1e12, 1e12)

PixelSizeA = PIXEL_SIZE.type
VoxelSizeA = VOXEL_SIZE.type
VoltageKV = VOLTAGE.type
SphericalAberrationMM = SPHERICAL_ABERRATION.type
AmplitudeContrast = AMPLITUDE_CONTRAST.type
DosePerTiltEA2 = DOSE_PER_TILT.type
AccumulatedDoseEA2 = ACCUMULATED_DOSE.type
TiltAngleDeg = TILT_ANGLE.type
TiltStepDeg = TILT_STEP.type
AngleDeg = ANGLE.type
DefocusA = DEFOCUS.type
BeadDiameterNM = BEAD_DIAMETER.type
LengthA = LENGTH.type
ResolutionA = RESOLUTION.type
Magnification = MAGNIFICATION.type

__all__ = [
    "ACCUMULATED_DOSE",
    "AMPLITUDE_CONTRAST",
    "ANGLE",
    "BEAD_DIAMETER",
    "DEFOCUS",
    "DOSE_PER_TILT",
    "LENGTH",
    "MAGNIFICATION",
    "PIXEL_SIZE",
    "RESOLUTION",
    "SPHERICAL_ABERRATION",
    "TILT_ANGLE",
    "TILT_STEP",
    "VOLTAGE",
    "VOXEL_SIZE",
    "AccumulatedDoseEA2",
    "AmplitudeContrast",
    "AngleDeg",
    "BeadDiameterNM",
    "DefocusA",
    "DosePerTiltEA2",
    "LengthA",
    "Magnification",
    "PhysicalRange",
    "PixelSizeA",
    "ResolutionA",
    "SphericalAberrationMM",
    "TiltAngleDeg",
    "TiltStepDeg",
    "VoltageKV",
    "VoxelSizeA",
]
