"""Maps written by other programs: the axis order and cell of an MRC map's header, and its data as (z, y, x).

MRC-2014 lets a map store its axes in any order: words 17-19 (``mapc``, ``mapr``, ``maps``) say which of
x (1), y (2), z (3) runs along the columns (the fastest index), the rows and the sections. Inside tomoforge a
map is (z, y, x) (conventions.md), i.e. ``(mapc, mapr, maps) = (1, 2, 3)``; crystallographic maps (EMDB
entries from X-ray or MicroED) often differ. The voxel size along x, y, z is ``cella / (mx, my, mz)``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import mrcfile
import numpy as np

from .errors import format_error
from .mrc import mrc_shape, read_mrc

STANDARD_AXES = (1, 2, 3)


@dataclass(frozen=True)
class MapHeader:
    """What a map's header says about its grid.

    Attributes
    ----------
    axes : tuple of 3 int
        (mapc, mapr, maps): the axis (1 = x, 2 = y, 3 = z) along the columns, rows and sections.
    voxel_xyz_A : tuple of 3 float
        Voxel size along x, y, z (Å; 0 where the header leaves it unset).
    angles_deg : tuple of 3 float
        The cell angles α, β, γ (degrees; 90 for a map on an orthogonal grid, 0 read as 90: unset).
    """

    axes: tuple[int, int, int]
    voxel_xyz_A: tuple[float, float, float]
    angles_deg: tuple[float, float, float]

    @property
    def standard(self) -> bool:
        """Whether the data are stored (z, y, x) already."""
        return self.axes == STANDARD_AXES


def map_header(path: str | os.PathLike[str]) -> MapHeader:
    """The axis order, voxel sizes and cell angles of an MRC map; FormatError for a file that is not a
    volume or whose axis words are not a permutation of 1, 2, 3."""
    shape = mrc_shape(path)  # checks the file is a readable MRC
    if len(shape) != 3:
        raise format_error(path, f"not a volume (shape {shape})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mrcfile.open(path, header_only=True, permissive=True) as mrc:
            h = mrc.header
            axes = (int(h.mapc), int(h.mapr), int(h.maps))
            sampling = (int(h.mx), int(h.my), int(h.mz))
            cell = (float(h.cella.x), float(h.cella.y), float(h.cella.z))
            angles = (float(h.cellb.alpha), float(h.cellb.beta), float(h.cellb.gamma))
    if axes == (0, 0, 0):  # some writers leave the words unset: the default order
        axes = STANDARD_AXES
    if sorted(axes) != [1, 2, 3]:
        raise format_error(path, f"axis words (mapc, mapr, maps) = {axes} are not an order of x, y, z (1, 2, 3)")
    vx, vy, vz = (c / m if m > 0 else 0.0 for c, m in zip(cell, sampling))
    alpha, beta, gamma = (a if a else 90.0 for a in angles)
    return MapHeader(axes, (vx, vy, vz), (alpha, beta, gamma))


def read_map(path: str | os.PathLike[str]) -> np.ndarray:
    """The map as (z, y, x) float32, whatever order its header stores the axes in."""
    header = map_header(path)
    data = read_mrc(path)
    stored = (header.axes[2], header.axes[1], header.axes[0])  # the axis of data dims 0, 1, 2
    return np.ascontiguousarray(np.transpose(data, [stored.index(3), stored.index(2), stored.index(1)]))
