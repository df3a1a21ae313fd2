"""Tomograms: reconstructed volumes of one tilt series."""

from __future__ import annotations

from pydantic import Field

from tomoforge.model.acquisition import Acquisition
from tomoforge.model.base import Item, quantity
from tomoforge.model.quantities import VoxelSizeA


class Tomogram(Item):
    """A tomogram file with its sampling; positions in it are in Å from its centre."""

    __item_kind__ = "tomogram"
    __key__ = "name"
    __columns__ = ("name", "pixel_size_A", "binning")
    __files__ = ("file", "odd_file", "even_file", "source_file")

    name: str = Field(..., min_length=1)
    file: str
    pixel_size_A: VoxelSizeA = quantity(..., unit="Å/voxel")
    size_xyz: tuple[int, int, int] = Field(..., description="voxels along x, y, z")
    binning: float = Field(1.0, gt=0, description="binning relative to the tilt series it came from")
    origin_A: tuple[float, float, float] = quantity(
        (0.0, 0.0, 0.0), unit="Å", description="position of the volume centre in the tilt-series frame"
    )
    odd_file: str = ""
    even_file: str = ""
    tilt_series: str = Field("", description="name of the tilt series it was reconstructed from")
    acquisition: Acquisition | None = None
    source_file: str = ""

    @property
    def size_A(self) -> tuple[float, float, float]:
        x, y, z = self.size_xyz
        return (x * self.pixel_size_A, y * self.pixel_size_A, z * self.pixel_size_A)
