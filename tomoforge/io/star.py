"""RELION 5 tomography STAR files through ``starfile``.

tomograms.star (``data_global``), per-tilt-series stars (one loop named after the tilt series),
and particle stars (``data_general`` / ``data_optics`` / ``data_particles``).

Particles become a :class:`ParticleTable`: positions in Å relative to the tomogram centre
(RELION 5 ``rlnCenteredCoordinate{X,Y,Z}Angst`` minus ``rlnOrigin{X,Y,Z}Angst``) and rotation
matrices R with x_tomogram = R · x_reference + t (see tomoforge.io.euler for the Euler angles).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import starfile

from tomoforge.errors import quote
from tomoforge.io.atomic import atomic_path
from tomoforge.model import quantities as q
from tomoforge.model.quantities import PhysicalRange

from .errors import check_writable, format_error
from .euler import matrix_to_relion_euler, relion_euler_to_matrix

XYZ = ("X", "Y", "Z")
CENTERED = [f"rlnCenteredCoordinate{a}Angst" for a in XYZ]
PIXEL_COORDS = [f"rlnCoordinate{a}" for a in XYZ]
ORIGINS_A = [f"rlnOrigin{a}Angst" for a in XYZ]
ANGLES = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]
SUBTOMO_ANGLES = ["rlnTomoSubtomogramRot", "rlnTomoSubtomogramTilt", "rlnTomoSubtomogramPsi"]
TILT_SERIES_ALIGNMENT = ["rlnTomoXTilt", "rlnTomoYTilt", "rlnTomoZRot", "rlnTomoXShiftAngst", "rlnTomoYShiftAngst"]


def read_star_blocks(path: str | os.PathLike[str]) -> dict[str, pd.DataFrame | dict[str, Any]]:
    """All data blocks of a STAR file by name (loops as DataFrames, key/value blocks as dicts)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    blocks: dict[str, pd.DataFrame | dict[str, Any]]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blocks = starfile.read(path, always_dict=True)
    except Exception as exc:  # starfile raises assorted errors on malformed text
        raise format_error(path, f"not a readable STAR file ({type(exc).__name__}: {quote(str(exc))})") from exc
    if not blocks:
        raise format_error(path, "no data blocks")
    for name, block in blocks.items():
        check_star_values(path, name, block)
    return blocks


#: RELION columns whose values tomoforge uses, and the physical range each must lie in
STAR_RANGES: dict[str, PhysicalRange] = {
    "rlnTomoNominalStageTiltAngle": q.TILT_ANGLE,
    "rlnTomoYTilt": q.TILT_ANGLE,
    "rlnTomoXTilt": q.ANGLE,
    "rlnTomoZRot": q.ANGLE,
    "rlnDefocusAngle": q.ANGLE,
    "rlnPhaseShift": q.ANGLE,
    **{c: q.ANGLE for c in ANGLES + SUBTOMO_ANGLES},
    "rlnTomoXShiftAngst": q.LENGTH,
    "rlnTomoYShiftAngst": q.LENGTH,
    **{c: q.LENGTH for c in CENTERED + PIXEL_COORDS + ORIGINS_A},
    "rlnMicrographPreExposure": q.ACCUMULATED_DOSE,
    "rlnDefocusU": q.DEFOCUS,
    "rlnDefocusV": q.DEFOCUS,
    "rlnCtfMaxResolution": q.RESOLUTION,
    "rlnTomoTiltSeriesPixelSize": q.PIXEL_SIZE,
    "rlnMicrographOriginalPixelSize": q.PIXEL_SIZE,
    "rlnVoltage": q.VOLTAGE,
    "rlnSphericalAberration": q.SPHERICAL_ABERRATION,
    "rlnAmplitudeContrast": q.AMPLITUDE_CONTRAST,
    "rlnTomoSizeX": q.SIZE_PX,
    "rlnTomoSizeY": q.SIZE_PX,
    "rlnTomoSizeZ": q.SIZE_PX,
}


def check_star_values(path: str | os.PathLike[str], name: str, block: pd.DataFrame | dict[str, Any]) -> None:
    """FormatError naming the file, block, row, column, value and allowed range for the first value of a
    column in ``STAR_RANGES`` that is not a number (nan, inf, text) or lies outside its range.

    Parameters
    ----------
    path : path-like
        The file (for the message).
    name : str
        The block's name (``data_<name>``).
    block : DataFrame or dict
        A loop (rows) or a key/value block.
    """
    frame = pd.DataFrame([block]) if isinstance(block, dict) else block
    for column in [c for c in frame.columns if c in STAR_RANGES]:
        raw = frame[column]
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~STAR_RANGES[column].mask(values))
        if len(bad):
            row = int(bad[0])
            where = f"row {row + 1}: " if not isinstance(block, dict) else ""
            raise format_error(
                path,
                f"data_{name}: {where}_{column} = {quote(raw.iloc[row])} {STAR_RANGES[column].problem(values[row])}",
            )


def _loop(path: Path, blocks: dict[str, Any], name: str | None) -> pd.DataFrame:
    if name is not None and name in blocks:
        block = blocks[name]
    elif name is None:
        block = next(iter(blocks.values()))
    else:
        raise format_error(path, f"no data_{name} block (blocks: {', '.join(blocks)})")
    if isinstance(block, dict):
        block = pd.DataFrame([block])
    return block


def _require(path: Path, df: pd.DataFrame, columns: list[str], block: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise format_error(path, f"data_{block}: column {', '.join('_' + m for m in missing)} is missing")


def _write(blocks: dict[str, Any], path: str | os.PathLike[str], overwrite: bool) -> Path:
    """Write blocks whole or not at all (``io.atomic``)."""
    path = check_writable(path, overwrite)
    with atomic_path(path) as tmp:
        starfile.write(blocks, tmp, overwrite=True)
    return path


# --- tomograms.star -------------------------------------------------------------------------


def read_tomograms_star(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The ``data_global`` table of a RELION 5 tomograms.star (one row per tomogram)."""
    path = Path(path)
    blocks = read_star_blocks(path)
    df = _loop(path, blocks, "global" if "global" in blocks else None)
    _require(path, df, ["rlnTomoName"], "global")
    return df


def write_tomograms_star(df: pd.DataFrame, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write ``df`` as the ``data_global`` block of a tomograms.star."""
    if "rlnTomoName" not in df.columns:
        raise ValueError(f"{path}: tomograms table needs an rlnTomoName column")
    return _write({"global": df}, path, overwrite)


def tomogram_sizes_px(df: pd.DataFrame) -> dict[str, tuple[int, int, int]]:
    """{rlnTomoName: (rlnTomoSizeX, Y, Z)} from a tomograms table (sizes in unbinned pixels)."""
    cols = ["rlnTomoSizeX", "rlnTomoSizeY", "rlnTomoSizeZ"]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"tomograms table: column {missing[0]} is missing")
    return {
        str(r.rlnTomoName): (int(r.rlnTomoSizeX), int(r.rlnTomoSizeY), int(r.rlnTomoSizeZ)) for r in df.itertuples()
    }


# --- per-tilt-series star --------------------------------------------------------------------


def read_tilt_series_star(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The tilt-image table of a per-tilt-series star (first loop; its name in ``df.attrs['tomo_name']``).

    Columns as RELION 5 names them: rlnTomoNominalStageTiltAngle, rlnMicrographPreExposure (e/Å²),
    rlnDefocusU/V (Å), rlnDefocusAngle (°), rlnTomoXTilt/YTilt/ZRot (°),
    rlnTomoXShiftAngst/YShiftAngst (Å), rlnMicrographName ...
    """
    path = Path(path)
    blocks = read_star_blocks(path)
    name = next(iter(blocks))
    df = _loop(path, blocks, name)
    _require(path, df, ["rlnTomoNominalStageTiltAngle"] if "rlnTomoYTilt" not in df else [], name)
    df.attrs["tomo_name"] = name
    return df


def write_tilt_series_star(
    df: pd.DataFrame, path: str | os.PathLike[str], tomo_name: str, overwrite: bool = False
) -> Path:
    """Write a per-tilt-series star whose loop is ``data_<tomo_name>``."""
    if not tomo_name or any(c.isspace() for c in tomo_name):
        raise ValueError(f"{path}: tilt-series name {tomo_name!r} must be non-empty without spaces")
    return _write({tomo_name: df}, path, overwrite)


# --- particles -------------------------------------------------------------------------------


@dataclass
class ParticleTable:
    """Particles of one or more tomograms.

    positions_A: (n, 3) x, y, z in Å from the tomogram centre; rotations: (n, 3, 3) with
    x_tomogram = R · x_reference + t; extra: every other particle column (RELION names);
    optics: the ``data_optics`` table if any; general: the ``data_general`` values if any;
    oriented: whether the file gave angles (rotations are the identity where it did not).
    """

    tomo_names: list[str]
    positions_A: np.ndarray
    rotations: np.ndarray
    extra: pd.DataFrame = field(default_factory=pd.DataFrame)
    optics: pd.DataFrame | None = None
    general: dict[str, Any] | None = None
    oriented: bool = True

    def __len__(self) -> int:
        return len(self.tomo_names)


def _pixel_positions(
    path: Path,
    df: pd.DataFrame,
    optics: pd.DataFrame | None,
    pixel_size_A: float | None,
    sizes: dict[str, tuple[int, int, int]] | None,
) -> np.ndarray:
    """Old-style pixel coordinates -> centred Å: (coord - size / 2) · pixel size."""
    if pixel_size_A is None and optics is not None and "rlnTomoTiltSeriesPixelSize" in optics:
        values = optics["rlnTomoTiltSeriesPixelSize"].astype(float).unique()
        if len(values) == 1:
            pixel_size_A = float(values[0])
    if pixel_size_A is None:
        raise format_error(
            path,
            "pixel coordinates (_rlnCoordinateX) need the pixel size: pass "
            "pixel_size_A (no _rlnTomoTiltSeriesPixelSize in data_optics)",
        )
    if sizes is None:
        raise format_error(
            path,
            "pixel coordinates (_rlnCoordinateX) need the tomogram sizes: pass "
            "tomogram_sizes_px (_rlnTomoSizeX/Y/Z of tomograms.star)",
        )
    names = df["rlnTomoName"].astype(str)
    missing = sorted(set(names) - set(sizes))
    if missing:
        raise format_error(path, f"no tomogram size given for rlnTomoName {missing[0]!r}")
    size = np.array([sizes[n] for n in names], dtype=float)
    coords: np.ndarray = df[PIXEL_COORDS].to_numpy(dtype=float)
    return (coords - size / 2.0) * float(pixel_size_A)


def read_particles_star(
    path: str | os.PathLike[str],
    pixel_size_A: float | None = None,
    tomogram_sizes_px: dict[str, tuple[int, int, int]] | None = None,
) -> ParticleTable:
    """Read a RELION particle star (RELION 5 centred Å columns, or older pixel columns).

    Position = centred coordinate − rlnOrigin{X,Y,Z}Angst (Å). With only rlnCoordinateX/Y/Z
    (pixels), position = (coordinate − size/2) · pixel_size_A; pixel_size_A defaults to the
    optics rlnTomoTiltSeriesPixelSize. Orientation = subtomogram orientation · particle angles
    (rlnTomoSubtomogram{Rot,Tilt,Psi} then rlnAngle{Rot,Tilt,Psi}); identity where absent.
    """
    path = Path(path)
    blocks = read_star_blocks(path)
    block = "particles" if "particles" in blocks else next(iter(blocks))
    df = _loop(path, blocks, block).reset_index(drop=True)
    optics = blocks.get("optics") if isinstance(blocks.get("optics"), pd.DataFrame) else None
    general = blocks.get("general") if isinstance(blocks.get("general"), dict) else None
    _require(path, df, ["rlnTomoName"], block)
    used = ["rlnTomoName"]
    if all(c in df for c in CENTERED):
        positions = df[CENTERED].to_numpy(dtype=float)
        used += CENTERED
    elif all(c in df for c in PIXEL_COORDS):
        positions = _pixel_positions(path, df, optics, pixel_size_A, tomogram_sizes_px)
        used += PIXEL_COORDS
    else:
        _require(path, df, CENTERED, block)
    if all(c in df for c in ORIGINS_A):
        positions = positions - df[ORIGINS_A].to_numpy(dtype=float)
        used += ORIGINS_A
    n = len(df)
    rotations = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
    if all(c in df for c in SUBTOMO_ANGLES):
        # kept in extra too, so that writing keeps RELION's subtomogram frame (and its priors)
        rotations = relion_euler_to_matrix(*df[SUBTOMO_ANGLES].to_numpy(dtype=float).T)
    if all(c in df for c in ANGLES):
        rotations = rotations @ relion_euler_to_matrix(*df[ANGLES].to_numpy(dtype=float).T)
        used += ANGLES
    extra = df.drop(columns=used)
    return ParticleTable(
        tomo_names=df["rlnTomoName"].astype(str).tolist(),
        positions_A=positions,
        rotations=np.asarray(rotations, dtype=float),
        extra=extra,
        optics=optics,
        general=general,
        oriented=any(all(c in df for c in names) for names in (SUBTOMO_ANGLES, ANGLES)),
    )


def particles_dataframe(table: ParticleTable) -> pd.DataFrame:
    """The RELION 5 particle loop of ``table``: centred Å coordinates, origins (0 unless ``extra`` holds
    rlnOrigin{X,Y,Z}Angst), and angles.

    If ``extra`` holds rlnTomoSubtomogram{Rot,Tilt,Psi}, those are kept and rlnAngle* are the
    orientation relative to them; otherwise rlnAngle* hold the whole orientation.
    """
    n = len(table.tomo_names)
    positions = np.asarray(table.positions_A, dtype=float).reshape(n, 3)
    rotations = np.asarray(table.rotations, dtype=float).reshape(n, 3, 3)
    df = pd.DataFrame({"rlnTomoName": table.tomo_names})
    for i, col in enumerate(CENTERED):
        df[col] = positions[:, i]
    extra = table.extra.reset_index(drop=True) if table.extra is not None else pd.DataFrame()
    for col in ORIGINS_A:  # RELION's centre is coordinate − origin: a refined shift s is written as origin −s
        df[col] = extra[col].to_numpy(dtype=float) if col in extra else 0.0
    relative = rotations
    if all(c in extra for c in SUBTOMO_ANGLES):
        subtomo = relion_euler_to_matrix(*extra[SUBTOMO_ANGLES].to_numpy(dtype=float).T)
        relative = np.swapaxes(subtomo, -1, -2) @ rotations
    angles = matrix_to_relion_euler(relative)
    for i, col in enumerate(ANGLES):
        df[col] = angles[:, i]
    others = extra.drop(columns=[c for c in df.columns if c in extra.columns])
    return pd.concat([df, others], axis=1)


def _plain(value: Any) -> bool:
    """A STAR value written as it is: non-empty, no whitespace or quote, not starting a comment or keyword."""
    text = str(value)
    return (
        bool(text)
        and not any(c.isspace() or c in "\"'#" for c in text)
        and not text.startswith(("_", "data_", "loop_"))
    )


def _loop_text(name: str, df: pd.DataFrame) -> str | None:
    """A loop block as text, each column formatted at once (floats '%.6f' as starfile writes them, integers
    '%d', text as it is); None where a text value would need quoting (then starfile writes the block)."""
    lines = [f"data_{name}", "", "loop_"] + [f"_{c} #{i + 1}" for i, c in enumerate(df.columns)]
    formats, columns = [], []
    for c in df.columns:
        values = df[c]
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_integer_dtype(values):
            formats.append("%d")
            columns.append(values.astype(np.int64).tolist())
        elif pd.api.types.is_float_dtype(values):
            formats.append("%.6f")
            columns.append(values.astype(np.float64).tolist())
        else:
            text = values.astype(str)
            if not all(_plain(v) for v in pd.unique(text)):
                return None
            formats.append("%s")
            columns.append(text.tolist())
    row = "\t".join(formats)
    body = "\n".join(row % r for r in zip(*columns))
    return "\n".join(lines) + "\n" + body + "\n\n"


def write_particles_star(table: ParticleTable, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write a RELION 5 particle star (general and optics blocks first where the table has them), whole or not at
    all. The particle loop is formatted column by column (a million particles in seconds); a table with text
    that needs quoting goes through starfile."""
    blocks: dict[str, Any] = {}
    if table.general:
        blocks["general"] = table.general
    if table.optics is not None:
        blocks["optics"] = table.optics
    blocks["particles"] = particles_dataframe(table)
    loops = {name: _loop_text(name, block) for name, block in blocks.items() if isinstance(block, pd.DataFrame)}
    general = blocks.get("general") or {}
    if any(text is None for text in loops.values()) or not all(_plain(v) for v in general.values()):
        return _write(blocks, path, overwrite)
    path = check_writable(path, overwrite)
    parts = ["# written by tomoforge\n\n"]
    if general:
        parts.append("data_general\n\n" + "".join(f"_{k}\t{v}\n" for k, v in general.items()) + "\n")
    parts += [text for text in loops.values() if text is not None]
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as handle:
        handle.write("".join(parts))
    return path


__all__ = [
    "ParticleTable",
    "particles_dataframe",
    "read_particles_star",
    "read_star_blocks",
    "read_tilt_series_star",
    "read_tomograms_star",
    "tomogram_sizes_px",
    "write_particles_star",
    "write_tilt_series_star",
    "write_tomograms_star",
]
