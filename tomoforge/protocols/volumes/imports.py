"""Importing maps (references, averages, masks): MRC volumes with their voxel size and symmetry.

Each matching file becomes a ``Volume`` pointing at the file where it is (nothing is copied). Half maps
and a mask may be attached when one map is imported; each must have the map's shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import field_validator

from tomoforge.engine import Protocol, ProtocolParams, Task, param
from tomoforge.io.mrc import mrc_shape
from tomoforge.methods.symmetry import canonical_symmetry
from tomoforge.model.quantities import VoxelSizeA
from tomoforge.model.volume import Volume
from tomoforge.protocols.imports.files import ImportFileError, matching_files
from tomoforge.protocols.imports.tomograms import tomogram_from_file

#: the optional companions of a single imported map
COMPANIONS = ("half1_file", "half2_file", "mask_file")


class VolumeImportParams(ProtocolParams):
    files_path: str = param(..., help="an MRC map, or a folder holding maps (see pattern)")
    pattern: str = param("*.mrc", help="file name pattern (glob) in the folder")
    pixel_size_A: VoxelSizeA | None = param(None, unit="Å/voxel", help="override the MRC header's voxel size")
    symmetry: str = param("C1", help="point-group symmetry of the maps: Cn, Dn, T, O or I (RELION's axes)")
    half1_file: str = param("", help="first half map (one map imported only)")
    half2_file: str = param("", help="second half map (one map imported only)")
    mask_file: str = param("", help="mask of the map (one map imported only)")

    @field_validator("symmetry")
    @classmethod
    def _symmetry(cls, value: str) -> str:
        return canonical_symmetry(value)


def map_files(files_path: str, pattern: str) -> list[Path]:
    """The maps named by ``files_path``: that file, or the files of that folder matching ``pattern``."""
    path = Path(files_path).expanduser()
    if path.is_file():
        return [path.resolve()]
    return matching_files(files_path, pattern)


def volume_from_file(path: str, params: VolumeImportParams) -> Volume:
    """A Volume for an MRC map (and the companions the params give).

    Parameters
    ----------
    path : str
        The MRC map.
    params : VolumeImportParams
        Voxel size override, symmetry, half maps and mask.

    Returns
    -------
    Volume
        Named after the file, with its voxel size (the header's unless given), size and symmetry.

    Raises
    ------
    ImportFileError
        Not a volume; a voxel size unset (0 or 1 Å in the header) or outside its physical range; a half map
        or mask missing or of another shape than the map (each message names the file and the field).
    """
    # a map's voxel size is checked as a tomogram's is (unset header, physical range, override)
    checked = tomogram_from_file(path, params.pixel_size_A)
    file = Path(checked.file)
    nx, ny, nz = checked.size_xyz
    extra: dict[str, Any] = {}
    for field in COMPANIONS:
        given = getattr(params, field)
        if not given:
            continue
        other = Path(given).expanduser().resolve()
        if not other.is_file():
            raise ImportFileError(f"{field}: {other} is not a file")
        shape = mrc_shape(other)
        if shape != (nz, ny, nx):
            raise ImportFileError(
                f"{field}: {other} has shape {shape} (z, y, x), the map {file.name} has {(nz, ny, nx)}"
            )
        extra[field] = str(other)
    return Volume(
        name=file.stem,
        file=str(file),
        pixel_size_A=checked.pixel_size_A,
        symmetry=params.symmetry,
        size_xyz=(nx, ny, nz),
        source_file=str(file),
        **extra,
    )


@dataclass(frozen=True, kw_only=True)
class VolumeImportJob:
    """The job of ``import_volume_task``: one map file and the import's params."""

    path: str
    params: VolumeImportParams


def import_volume_task(job: VolumeImportJob) -> Volume:
    """Task: one MRC map -> its Volume (``volume_from_file``); nothing is written."""
    return volume_from_file(job.path, job.params)


class ImportVolumes(Protocol):
    """Import maps: MRC volumes (references, averages) with voxel size, symmetry, half maps and mask."""

    name = "import-volumes"
    Params = VolumeImportParams
    outputs = {"volumes": Volume}
    params: VolumeImportParams

    def tasks(self) -> Iterator[Task[VolumeImportJob]]:
        files = map_files(self.params.files_path, self.params.pattern)
        companions = [f for f in COMPANIONS if getattr(self.params, f)]
        if companions and len(files) > 1:
            raise ImportFileError(
                f"{', '.join(companions)}: given for {len(files)} maps ({files[0].name}, …); import one map with them"
            )
        for path in files:
            yield Task(import_volume_task, VolumeImportJob(path=str(path), params=self.params), key=path.name)

    def collect(self, task: Task[Any], result: Volume) -> None:
        self.emit("volumes", result, task)
