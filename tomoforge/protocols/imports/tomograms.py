"""Importing tomograms: MRC volumes with their size and voxel size."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tomoforge.engine import Protocol, ProtocolParams, Task, param
from tomoforge.io.errors import FormatError
from tomoforge.io.mrc import mrc_shape, read_voxel_size
from tomoforge.model import Tomogram
from tomoforge.model.quantities import VOXEL_SIZE, VoxelSizeA
from tomoforge.protocols.imports.files import ImportFileError, matching_files


def tomogram_from_file(path: str, pixel_size_A: float | None = None) -> Tomogram:
    """A Tomogram for an MRC volume.

    Parameters
    ----------
    path : str
        The MRC volume.
    pixel_size_A : float, optional
        Its voxel size (Å); None: the header's.

    Returns
    -------
    Tomogram
        Named after the file, with its size (x, y, z voxels) and voxel size.

    Raises
    ------
    ImportFileError
        Not a volume, or a voxel size unset (0 or 1 Å in the header) or outside its physical range.
    """
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


class TomogramImportParams(ProtocolParams):
    files_path: str = param(..., help="folder holding the tomograms")
    pattern: str = param("*.mrc", help="file name pattern")
    pixel_size_A: VoxelSizeA | None = param(None, unit="Å/voxel", help="override the MRC header's voxel size")


@dataclass(frozen=True, kw_only=True)
class TomogramJob:
    """The job of ``import_tomogram_task``: one volume file and the import's params."""

    path: str
    params: TomogramImportParams


def import_tomogram_task(job: TomogramJob) -> Tomogram:
    """Task: one MRC volume -> its Tomogram (``tomogram_from_file`` with the import's ``pixel_size_A``).

    Parameters
    ----------
    job : TomogramJob
        The volume file and the import's params.

    Returns
    -------
    Tomogram
        See ``tomogram_from_file``; nothing is written.
    """
    return tomogram_from_file(job.path, job.params.pixel_size_A)


class ImportTomograms(Protocol):
    """Import tomograms: MRC volumes with their voxel size."""

    name = "import-tomograms"
    Params = TomogramImportParams
    outputs = {"tomograms": Tomogram}
    params: TomogramImportParams

    def tasks(self) -> Iterator[Task[TomogramJob]]:
        for path in matching_files(self.params.files_path, self.params.pattern):
            yield Task(import_tomogram_task, TomogramJob(path=str(path), params=self.params), key=path.name)

    def collect(self, task: Task[Any], result: Tomogram) -> None:
        self.emit("tomograms", result, task)
