"""Landmark (fiducial) models: 2D positions of beads on the views of a tilt series."""

from __future__ import annotations

from pydantic import Field

from tomoforge.model.base import Item, quantity
from tomoforge.model.quantities import BeadDiameterNM, PixelSizeA


class LandmarkModel(Item):
    """Tracked landmarks of one tilt series; the point table lives in a file (one row per point)."""

    __item_kind__ = "landmark_model"
    __key__ = "name"
    __columns__ = ("name", "n_landmarks", "has_residuals")
    __files__ = ("file",)

    name: str = Field(..., description="name of the tilt series")
    file: str = Field(..., description="table of (landmark id, view, x px, y px[, residual x, y])")
    n_landmarks: int = Field(0, ge=0)
    diameter_nm: BeadDiameterNM = quantity(10.0, unit="nm", description="bead diameter")
    has_residuals: bool = False
    pixel_size_A: PixelSizeA = quantity(..., unit="Å/px", description="sampling of the positions")
