"""Particle positions in tomograms, with optional orientation."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field, field_validator

from tomoforge.model.base import Item, quantity
from tomoforge.model.quantities import LengthA

IDENTITY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


class Coordinate3D(Item):
    """A position in Å from its tomogram's centre and a rotation R (x_tomo = R x_ref + t)."""

    __item_kind__ = "coordinate3d"
    __key__ = "number"
    __columns__: ClassVar[tuple[str, ...]] = (
        "number",
        "tomogram",
        "x_A",
        "y_A",
        "z_A",
        "group",
        "score",
        "has_orientation",
    )
    __packed__: ClassVar[dict[str, str]] = {
        "rotation": "rotation"
    }  # a unit quaternion of 32 bytes: millions of particles stay small

    number: int = Field(..., ge=0, description="running number of the coordinate in its set")
    tomogram: str = Field(..., description="name of the tomogram it lies in")
    x_A: LengthA = quantity(..., unit="Å")
    y_A: LengthA = quantity(..., unit="Å")
    z_A: LengthA = quantity(..., unit="Å")
    rotation: tuple[tuple[float, float, float], ...] = Field(IDENTITY, description="3x3 rotation matrix")
    has_orientation: bool = Field(False, description="rotation was measured, not just the identity")
    group: int = Field(0, description="group (e.g. the vesicle or filament it belongs to)")
    score: float | None = None

    @field_validator("rotation")
    @classmethod
    def _is_rotation(cls, value: tuple[tuple[float, float, float], ...]) -> tuple[tuple[float, ...], ...]:
        matrix = np.asarray(value, dtype=float)
        if matrix.shape != (3, 3):
            raise ValueError(f"rotation must be 3x3, got shape {matrix.shape}")
        if not np.allclose(matrix @ matrix.T, np.eye(3), atol=1e-4) or np.linalg.det(matrix) < 0:
            raise ValueError("rotation is not a proper rotation matrix (R Rᵀ = I, det R = +1)")
        return tuple(tuple(float(v) for v in row) for row in matrix)

    @property
    def position_A(self) -> np.ndarray:
        return np.array([self.x_A, self.y_A, self.z_A])


class Particle(Coordinate3D):
    """A particle for subtomogram averaging: its coordinate and rotation (as `Coordinate3D`), the shift a
    refinement found, its half set, the tilt series it is seen in, and the data extracted for it.

    The particle's centre in its tomogram is ``position_A + shift_A`` (Å from the tomogram's centre);
    ``rotation`` maps the reference's frame to the tomogram's (x_tomo = R x_ref + t). ``file`` and
    ``index`` name the extracted data (a 3D subtomogram, or a 2D stack of its views), ``weight_file`` its
    3D weight (missing wedge, CTF², dose) where one was written. Every field a set of a million particles
    is read by is a typed column, so ``ItemSet.arrays`` gives them without an object per particle.
    """

    __item_kind__ = "particle"
    __columns__ = (
        *Coordinate3D.__columns__,
        "half_set",
        "shift_x_A",
        "shift_y_A",
        "shift_z_A",
        "tilt_series",
        "file",
        "index",
        "weight_file",
    )
    __files__ = ("file", "weight_file")

    tilt_series: str = Field("", description="name of the tilt series the particle is seen in")
    shift_x_A: float = quantity(0.0, unit="Å", description="refined shift added to the coordinate")
    shift_y_A: float = quantity(0.0, unit="Å", description="refined shift added to the coordinate")
    shift_z_A: float = quantity(0.0, unit="Å", description="refined shift added to the coordinate")
    file: str = Field("", description="extracted data: a 3D subtomogram or a 2D stack of its views")
    index: int = Field(0, ge=0, description="section (2D stack: first view) of `file` holding this particle")
    weight_file: str = Field("", description="3D weight of the extracted subtomogram (wedge, CTF², dose)")
    half_set: int = Field(0, ge=0, le=2, description="1 or 2 for gold-standard refinement, 0 unset")

    @property
    def shift_A(self) -> np.ndarray:
        return np.array([self.shift_x_A, self.shift_y_A, self.shift_z_A])
