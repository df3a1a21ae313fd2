"""Volumes (maps, averages) with half maps, mask and FSC."""

from __future__ import annotations

from itertools import pairwise

from pydantic import Field, field_validator, model_validator

from tomoforge.methods.symmetry import canonical_symmetry
from tomoforge.model.base import Item, quantity
from tomoforge.model.quantities import VoxelSizeA


class FSC(Item):
    """A Fourier shell correlation curve: spatial frequency (1/Å) against correlation."""

    __item_kind__ = "fsc"
    __key__ = "label"

    label: str = "fsc"
    frequency_per_A: list[float]
    correlation: list[float]

    @model_validator(mode="after")
    def _same_length(self) -> FSC:
        if len(self.frequency_per_A) != len(self.correlation):
            raise ValueError("frequency_per_A and correlation differ in length")
        return self

    def resolution_A(self, threshold: float = 0.143) -> float | None:
        """Resolution (Å) where the curve first falls below `threshold`, linearly interpolated."""
        pairs = list(zip(self.frequency_per_A, self.correlation))
        for (f0, c0), (f1, c1) in pairwise(pairs):
            if c0 >= threshold > c1:
                f = f0 + (c0 - threshold) * (f1 - f0) / (c0 - c1)
                return 1.0 / f if f > 0 else None
        return None


class Volume(Item):
    """A 3D map, optionally with its two half maps, a mask and the FSC between the halves."""

    __item_kind__ = "volume"
    __key__ = "name"
    __columns__ = ("name", "pixel_size_A")
    __files__ = ("file", "half1_file", "half2_file", "mask_file", "source_file")

    name: str
    file: str
    pixel_size_A: VoxelSizeA = quantity(..., unit="Å/voxel")
    half1_file: str = ""
    half2_file: str = ""
    mask_file: str = ""
    symmetry: str = Field("C1", description="point-group symmetry (Cn, Dn, T, O, I)")
    fsc: FSC | None = None
    # added by issue 18 (defaults keep the volumes of older projects readable)
    size_xyz: tuple[int, int, int] | None = Field(None, description="voxels along x, y, z (None: not recorded)")
    source_file: str = Field("", description="the file it was imported from")

    @field_validator("symmetry")
    @classmethod
    def _known_symmetry(cls, value: str) -> str:
        return canonical_symmetry(value)
