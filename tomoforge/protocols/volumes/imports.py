"""Importing maps (references, averages, masks): MRC volumes with their voxel size and symmetry.

Each matching file becomes a ``Volume`` pointing at the file where it is; a map whose header stores its axes
in another order than (z, y, x) is copied in that order into the run's folder. Crystallographic maps (a cell
that is not orthogonal, voxels that are not cubic) are refused. Half maps and a mask may be attached when one
map is imported; each must have the map's shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import field_validator

from tomoforge.engine import Protocol, ProtocolParams, Task, param
from tomoforge.io.maps import map_header, read_map
from tomoforge.io.mrc import mrc_shape, write_mrc
from tomoforge.methods.symmetry import canonical_symmetry
from tomoforge.model.quantities import VoxelSizeA
from tomoforge.model.volume import Volume
from tomoforge.protocols.imports.files import ImportFileError, matching_files
from tomoforge.protocols.imports.tomograms import tomogram_from_file

#: the optional companions of a single imported map
COMPANIONS = ("half1_file", "half2_file", "mask_file")


class VolumeImportParams(ProtocolParams):
    files_path: str = param(..., help="an MRC map, a glob of maps, or a folder holding maps (see pattern)")
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
    """The maps named by ``files_path``: that file, the files a glob matches (``/maps/ref_*.mrc``), or the
    files of that folder matching ``pattern``."""
    path = Path(files_path).expanduser()
    if path.is_file():
        return [path.resolve()]
    if not path.is_dir() and any(c in files_path for c in "*?["):
        return matching_files(str(path.parent), path.name)
    return matching_files(files_path, pattern)


def volume_from_file(path: str, params: VolumeImportParams, out_dir: str) -> Volume:
    """A Volume for an MRC map (and the companions the params give).

    Parameters
    ----------
    path : str
        The MRC map.
    params : VolumeImportParams
        Voxel size override, symmetry, half maps and mask.
    out_dir : str
        Where a map stored in another axis order than (z, y, x) is copied in that order.

    Returns
    -------
    Volume
        Named after the file, with its voxel size (the header's unless given), size and symmetry.

    Raises
    ------
    ImportFileError
        Not a volume; a voxel size unset (0 or 1 Å in the header) or outside its physical range; voxels that
        are not cubic or a cell that is not orthogonal (a crystallographic map); a half map or mask missing or
        of another shape than the map (each message names the file and the field).
    """
    # a map's voxel size is checked as a tomogram's is (unset header, physical range, override)
    checked = tomogram_from_file(path, params.pixel_size_A)
    file = source = Path(checked.file)
    header = map_header(file)
    if any(abs(a - 90.0) > 0.01 for a in header.angles_deg):
        angles = ", ".join(f"{a:g}" for a in header.angles_deg)
        raise ImportFileError(
            f"{file}: cell angles (α, β, γ) = ({angles})°, not 90°: a crystallographic cell, not a map on an "
            "orthogonal grid; resample it onto a cubic grid first"
        )
    sizes = header.voxel_xyz_A
    if params.pixel_size_A is None and max(sizes) - min(sizes) > 1e-3 * max(sizes):
        shown = ", ".join(f"{v:.4g}" for v in sizes)
        raise ImportFileError(
            f"{file}: voxel sizes along x, y, z differ ({shown} Å): a map needs cubic voxels; resample it, or "
            "give pixel_size_A if the header is wrong"
        )
    if not header.standard:  # stored in another axis order: a (z, y, x) copy in the run's folder
        file = Path(out_dir) / f"{source.stem}.mrc"
        write_mrc(file, read_map(source), checked.pixel_size_A, overwrite=True)
    nz, ny, nx = mrc_shape(file)
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
        source_file=str(source),
        **extra,
    )


@dataclass(frozen=True, kw_only=True)
class VolumeImportJob:
    """The job of ``import_volume_task``: one map file and the import's params."""

    path: str
    params: VolumeImportParams
    out_dir: str


def import_volume_task(job: VolumeImportJob) -> Volume:
    """Task: one MRC map -> its Volume (``volume_from_file``); a map stored in another axis order is copied
    as (z, y, x) into ``job.out_dir``, nothing else is written."""
    return volume_from_file(job.path, job.params, job.out_dir)


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
            job = VolumeImportJob(path=str(path), params=self.params, out_dir=str(self.context.out_dir))
            yield Task(import_volume_task, job, key=path.name)

    def collect(self, task: Task[Any], result: Volume) -> None:
        if result.file != result.source_file:
            self.log(f"{result.name}: axes reordered to (z, y, x) in {result.file}")
        self.emit("volumes", result.model_copy(update={"file": self.relative(result.file)}), task)
