"""Reading a tomogram file's geometry for import."""

from __future__ import annotations

from pathlib import Path

from tomoforge.io.errors import FormatError
from tomoforge.io.mrc import mrc_shape, read_voxel_size
from tomoforge.model import Tomogram
from tomoforge.model.quantities import VOXEL_SIZE
from tomoforge.protocols.imports.mdoc import ImportFileError


def tomogram_from_file(path: str, pixel_size_A: float | None = None) -> Tomogram:
    """A Tomogram for an MRC volume; the voxel size from the header unless given."""
    file = Path(path).resolve()
    shape = mrc_shape(file)
    if len(shape) != 3:
        raise ImportFileError(f"{file}: not a volume (shape {shape})")
    try:
        voxel = pixel_size_A or read_voxel_size(file)
    except FormatError as exc:
        raise ImportFileError(f"{exc}; give pixel_size_A") from None
    if voxel == 1.0 and pixel_size_A is None:
        raise ImportFileError(f"{file}: voxel size in the header is 1.0 Å, which looks unset; give pixel_size_A")
    problem = VOXEL_SIZE.problem(voxel)
    if problem:
        raise ImportFileError(f"{file}: voxel size {voxel:g} {problem}; give pixel_size_A")
    nz, ny, nx = shape
    return Tomogram(name=file.stem, file=str(file), pixel_size_A=voxel, size_xyz=(nx, ny, nz), source_file=str(file))
