"""Reading coordinate files (RELION 5 star, Dynamo table, x y z text) into Coordinate3D fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tomoforge.errors import quote
from tomoforge.model.quantities import LENGTH
from tomoforge.protocols.imports.mdoc import ImportFileError

TomogramInfo = dict[str, tuple[tuple[int, int, int], float]]  # name -> (size xyz px, pixel size Å)


def centred_from_pixels(xyz_px: np.ndarray, size_xyz: tuple[int, int, int], pixel_size_A: float) -> np.ndarray:
    """Corner-origin pixel coordinates -> Å from the tomogram centre ((coord - size/2) * pixel)."""
    return (np.asarray(xyz_px, float) - np.asarray(size_xyz, float) / 2.0) * pixel_size_A


def coordinates_from_file(path: str, params: dict[str, Any], tomograms: TomogramInfo) -> list[dict[str, Any]]:
    """Task: one coordinate file -> a list of Coordinate3D field dicts (positions in centred Å)."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix == ".star":
        names, positions, rotations = _from_star(file, params, tomograms)
    elif suffix == ".tbl":
        names, positions, rotations = _from_tbl(file, params, tomograms)
    else:
        names, positions, rotations = _from_text(file, params, tomograms)
    _check_finite(file, positions, rotations)
    for name in sorted(set(names)):
        if name not in tomograms:
            raise ImportFileError(
                f"{file}: tomogram {name!r} is not among the input tomograms ({', '.join(tomograms) or 'none'})"
            )
    out = []
    for i in range(len(names)):
        row: dict[str, Any] = {
            "tomogram": names[i],
            "x_A": float(positions[i, 0]),
            "y_A": float(positions[i, 1]),
            "z_A": float(positions[i, 2]),
        }
        if rotations is not None:
            row["rotation"] = tuple(tuple(float(v) for v in r) for r in rotations[i])
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


def _tomogram_for(file: Path, params: dict[str, Any], tomograms: TomogramInfo) -> str:
    name = params.get("tomogram") or file.stem
    if name not in tomograms:
        matches = [t for t in tomograms if file.stem.startswith(t)]
        if len(matches) == 1:
            return matches[0]
        raise ImportFileError(
            f"{file}: no input tomogram named {name!r}; set 'tomogram' (tomograms: {', '.join(tomograms) or 'none'})"
        )
    return name


def _from_star(file: Path, params: dict[str, Any], tomograms: TomogramInfo):
    from tomoforge.io.star import read_particles_star

    sizes = {name: size for name, (size, _) in tomograms.items()}
    pixel = params.get("pixel_size_A") or (next(iter(tomograms.values()))[1] if tomograms else None)
    table = read_particles_star(file, pixel_size_A=pixel, tomogram_sizes_px=sizes)
    return list(table.tomo_names), table.positions_A, table.rotations


def _from_tbl(file: Path, params: dict[str, Any], tomograms: TomogramInfo):
    from tomoforge.io.dynamo import read_tbl, tbl_positions_A, tbl_rotations

    name = _tomogram_for(file, params, tomograms)
    size, tomo_pixel = tomograms[name]
    pixel = params.get("pixel_size_A") or tomo_pixel
    df = read_tbl(file)
    return [name] * len(df), tbl_positions_A(df, pixel, size), tbl_rotations(df)


def _from_text(file: Path, params: dict[str, Any], tomograms: TomogramInfo):
    from tomoforge.io.text import read_coordinates_text

    name = _tomogram_for(file, params, tomograms)
    xyz = read_coordinates_text(file)
    if params.get("units") == "pixel":
        size, tomo_pixel = tomograms[name]
        xyz = centred_from_pixels(xyz, size, params.get("pixel_size_A") or tomo_pixel)
    return [name] * len(xyz), xyz, None
