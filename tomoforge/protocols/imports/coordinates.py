"""Importing 3D coordinates: RELION 5 particle star, Dynamo table, IMOD model or x y z text, read into
Coordinate3D fields as arrays (written with ``ItemSet.append_columns``, never item by item)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from tomoforge.engine import InputSpec, Protocol, ProtocolParams, Task, param
from tomoforge.errors import quote
from tomoforge.model import Coordinate3D, Tomogram
from tomoforge.model.quantities import LENGTH, VoxelSizeA
from tomoforge.protocols.imports.files import ImportFileError, matching_files

TomogramInfo = dict[str, tuple[tuple[int, int, int], float]]  # name -> (size xyz px, pixel size Å)
# tomogram of each row, positions (n, 3) Å, rotations (n, 3, 3) or None, scores (n,) or None
Read = tuple[list[str], np.ndarray, "np.ndarray | None", "np.ndarray | None"]
#: particle star columns read as the score (RELION's autopicking figure of merit, pytom-match-pick's LCC)
STAR_SCORES = ("rlnAutopickFigureOfMerit", "rlnLCCmax")


class CoordinateImportParams(ProtocolParams):
    files_path: str = param(..., help="folder holding the coordinate files")
    pattern: str = param(
        "*.star", help="file name pattern (.star RELION 5, .tbl Dynamo, .mod IMOD model, other: x y z text)"
    )
    units: Literal["angstrom", "pixel"] = param(
        "angstrom", help="text files: Å from the tomogram centre, or pixels from its corner"
    )
    pixel_size_A: VoxelSizeA | None = param(None, unit="Å/px", help="pixel size of pixel coordinates")
    tomogram: str = param("", help="text/.tbl/.mod files: name of the tomogram they belong to ('' = file name)")


def centred_from_pixels(xyz_px: np.ndarray, size_xyz: tuple[int, int, int], pixel_size_A: float) -> np.ndarray:
    """Corner-origin pixel coordinates -> Å from the tomogram centre ((coord - size/2) * pixel)."""
    return (np.asarray(xyz_px, float) - np.asarray(size_xyz, float) / 2.0) * pixel_size_A


@dataclass(frozen=True, kw_only=True)
class CoordinatesJob:
    """The job of ``import_coordinates_task``: one coordinate file, the import's params, and the input
    tomograms' geometry."""

    path: str
    params: CoordinateImportParams
    tomograms: TomogramInfo


def import_coordinates_task(job: CoordinatesJob) -> dict[str, np.ndarray]:
    """Task: one coordinate file -> its Coordinate3D fields as arrays.

    Parameters
    ----------
    job : CoordinatesJob
        The file, the import's params and the input tomograms' geometry.

    Returns
    -------
    dict of arrays
        See ``coordinate_arrays_from_file``.
    """
    return coordinate_arrays_from_file(job.path, job.params, job.tomograms)


def coordinate_arrays_from_file(
    path: str, params: CoordinateImportParams, tomograms: TomogramInfo
) -> dict[str, np.ndarray]:
    """The coordinates of one file, as arrays.

    Parameters
    ----------
    path : str
        A RELION 5 particle star (``.star``), Dynamo table (``.tbl``), IMOD model (``.mod``, pixels from the
        corner of the tomogram named like the file) or x y z text file (any other suffix).
    params : CoordinateImportParams
        The import's params (units and pixel size of text files, the tomogram of text/.tbl/.mod files).
    tomograms : dict
        The input tomograms: name -> (size x, y, z in px, pixel size in Å).

    Returns
    -------
    dict of arrays
        Coordinate3D fields (``number`` left out), one row per particle: ``tomogram`` (n,), ``x_A``, ``y_A``,
        ``z_A`` (n,) in Å from the tomogram's centre, ``rotation`` (n, 3, 3) and ``has_orientation`` (n,)
        where the file gives orientations, ``score`` (n,) where it gives scores (the star's
        rlnAutopickFigureOfMerit or rlnLCCmax, the table's cc).

    Raises
    ------
    ImportFileError
        A position or orientation not finite, or a tomogram not among the inputs (naming the file).
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix == ".star":
        names, positions, rotations, scores = _from_star(file, params, tomograms)
    elif suffix == ".tbl":
        names, positions, rotations, scores = _from_tbl(file, params, tomograms)
    elif suffix == ".mod":
        names, positions, rotations, scores = _from_mod(file, params, tomograms)
    else:
        names, positions, rotations, scores = _from_text(file, params, tomograms)
    _check_finite(file, positions, rotations)
    for name in sorted(set(names)):
        if name not in tomograms:
            raise ImportFileError(
                f"{file}: tomogram {name!r} is not among the input tomograms ({', '.join(tomograms) or 'none'})"
            )
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    out: dict[str, np.ndarray] = {
        "tomogram": np.asarray(names, dtype=str),
        "x_A": positions[:, 0],
        "y_A": positions[:, 1],
        "z_A": positions[:, 2],
    }
    if rotations is not None:
        out["rotation"] = np.asarray(rotations, dtype=np.float64).reshape(-1, 3, 3)
        out["has_orientation"] = np.ones(len(positions), dtype=bool)
    if scores is not None:
        out["score"] = np.asarray(scores, dtype=np.float64)
    return out


def coordinates_from_file(path: str, params: CoordinateImportParams, tomograms: TomogramInfo) -> list[dict[str, Any]]:
    """The coordinates of one file as one dict of Coordinate3D fields per particle (``number`` left out); see
    ``coordinate_arrays_from_file``."""
    arrays = coordinate_arrays_from_file(path, params, tomograms)
    out = []
    for i in range(len(arrays["x_A"])):
        row: dict[str, Any] = {"tomogram": str(arrays["tomogram"][i])}
        row.update({k: float(arrays[k][i]) for k in ("x_A", "y_A", "z_A", "score") if k in arrays})
        if "rotation" in arrays:
            row["rotation"] = tuple(tuple(float(v) for v in r) for r in arrays["rotation"][i])
            row["has_orientation"] = True
        out.append(row)
    return out


def _check_finite(file: Path, positions: np.ndarray, rotations: np.ndarray | None) -> None:
    """ImportFileError naming the file and the particle whose position (Å) is not finite or absurd, or whose
    orientation holds nan/inf."""
    bad = ~LENGTH.mask(positions).all(axis=1)
    if rotations is not None:
        bad |= ~np.isfinite(np.asarray(rotations, float)).reshape(len(positions), -1).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ImportFileError(
            f"{file}: particle {i + 1} (row {i + 1} of its table): position "
            f"{quote(positions[i].tolist())} Å or its orientation is not finite, or the position "
            f"is not {LENGTH.describe()}"
        )


def _tomogram_for(file: Path, params: CoordinateImportParams, tomograms: TomogramInfo) -> str:
    name = params.tomogram or file.stem
    if name not in tomograms:
        matches = [t for t in tomograms if file.stem.startswith(t)]
        if len(matches) == 1:
            return matches[0]
        raise ImportFileError(
            f"{file}: no input tomogram named {name!r}; set 'tomogram' (tomograms: {', '.join(tomograms) or 'none'})"
        )
    return name


def _from_star(file: Path, params: CoordinateImportParams, tomograms: TomogramInfo) -> Read:
    from tomoforge.io.star import read_particles_star

    sizes = {name: size for name, (size, _) in tomograms.items()}
    pixel = params.pixel_size_A or (next(iter(tomograms.values()))[1] if tomograms else None)
    table = read_particles_star(file, pixel_size_A=pixel, tomogram_sizes_px=sizes)
    scores = next((table.extra[c].to_numpy(dtype=float) for c in STAR_SCORES if c in table.extra), None)
    rotations = table.rotations if table.oriented else None
    return list(table.tomo_names), table.positions_A, rotations, scores


def _from_tbl(file: Path, params: CoordinateImportParams, tomograms: TomogramInfo) -> Read:
    from tomoforge.io.dynamo import read_tbl, tbl_positions_A, tbl_rotations

    name = _tomogram_for(file, params, tomograms)
    size, tomo_pixel = tomograms[name]
    pixel = params.pixel_size_A or tomo_pixel
    df = read_tbl(file)
    scores = df["cc"].to_numpy(dtype=float) if "cc" in df else None
    return [name] * len(df), tbl_positions_A(df, pixel, size), tbl_rotations(df), scores


def _from_mod(file: Path, params: CoordinateImportParams, tomograms: TomogramInfo) -> Read:
    from tomoforge.io.imod import read_imod_points

    name = _tomogram_for(file, params, tomograms)
    size, tomo_pixel = tomograms[name]
    xyz = read_imod_points(file)[["x", "y", "z"]].to_numpy(dtype=float)
    return [name] * len(xyz), centred_from_pixels(xyz, size, params.pixel_size_A or tomo_pixel), None, None


def _from_text(file: Path, params: CoordinateImportParams, tomograms: TomogramInfo) -> Read:
    from tomoforge.io.text import read_coordinates_text

    name = _tomogram_for(file, params, tomograms)
    xyz = read_coordinates_text(file)
    if params.units == "pixel":
        size, tomo_pixel = tomograms[name]
        xyz = centred_from_pixels(xyz, size, params.pixel_size_A or tomo_pixel)
    return [name] * len(xyz), xyz, None, None


class ImportCoordinates(Protocol):
    """Import 3D coordinates: RELION 5 particle star, Dynamo table, IMOD model or plain x y z text."""

    name = "import-coordinates"
    Params = CoordinateImportParams
    inputs = {"tomograms": InputSpec(Tomogram, help="the tomograms the coordinates lie in")}
    outputs = {"coordinates": Coordinate3D}
    params: CoordinateImportParams

    def tasks(self) -> Iterator[Task[CoordinatesJob]]:
        inputs = cast(Iterable[Tomogram], self.input("tomograms"))  # what its InputSpec accepts
        tomograms = {t.name: (t.size_xyz, t.pixel_size_A) for t in inputs}
        for path in matching_files(self.params.files_path, self.params.pattern):
            job = CoordinatesJob(path=str(path), params=self.params, tomograms=tomograms)
            yield Task(import_coordinates_task, job, key=path.name)

    def collect(self, task: Task[Any], result: dict[str, np.ndarray]) -> None:
        from tomoforge.protocols.picking.coordinate_sets import append_coordinates

        n = len(result["x_A"])
        append_coordinates(self.output("coordinates"), result, [list(task.origin)] * n if task.origin else None)
