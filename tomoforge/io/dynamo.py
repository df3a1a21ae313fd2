"""Dynamo particle tables (``.tbl``): whitespace-separated numbers, one particle per row.

Column numbers follow the Dynamo wiki "Table" page (as teamtomo/dynamotable uses them):
1 tag, 2 aligned, 3 averaged, 4-6 dx dy dz (shifts, px), 7-9 tdrot tilt narot (degrees),
10 cc, 11 cc2, 12 cpu, 13 ftype, 14-17 ymintilt ymaxtilt xmintilt xmaxtilt, 18-19 fs1 fs2,
20 tomo, 21 reg, 22 class, 23 annotation, 24-26 x y z (px), 27 dshift, 28 daxis, 29 dnarot,
30 dcc, 31 otag, 32 npar, 34 ref, 35 sref, 36 apix, 37 def, 41 eig1, 42 eig2; unnamed columns
are called col33, col38 ...
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import format_error, read_text_lines, write_text_atomic
from .euler import dynamo_euler_to_matrix, matrix_to_dynamo_euler

_NAMED = {
    1: "tag",
    2: "aligned",
    3: "averaged",
    4: "dx",
    5: "dy",
    6: "dz",
    7: "tdrot",
    8: "tilt",
    9: "narot",
    10: "cc",
    11: "cc2",
    12: "cpu",
    13: "ftype",
    14: "ymintilt",
    15: "ymaxtilt",
    16: "xmintilt",
    17: "xmaxtilt",
    18: "fs1",
    19: "fs2",
    20: "tomo",
    21: "reg",
    22: "class",
    23: "annotation",
    24: "x",
    25: "y",
    26: "z",
    27: "dshift",
    28: "daxis",
    29: "dnarot",
    30: "dcc",
    31: "otag",
    32: "npar",
    34: "ref",
    35: "sref",
    36: "apix",
    37: "def",
    41: "eig1",
    42: "eig2",
}
INT_COLUMNS = ("tag", "aligned", "averaged", "tomo", "reg", "class", "annotation", "ftype")


def column_name(number: int) -> str:
    """Name of Dynamo table column ``number`` (1-based)."""
    return _NAMED.get(number, f"col{number}")


def _value(token: str) -> float:
    """A number; MATLAB complex values ('0+1.2e-06i', written by some Dynamo versions) give
    their real part."""
    if token.endswith("i"):
        return complex(token[:-1] + "j").real
    return float(token)


def read_tbl(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a .tbl into a DataFrame with named columns (FormatError naming a bad line)."""
    path = Path(path)
    rows: list[list[float]] = []
    width = None
    for lineno, raw in enumerate(read_text_lines(path), start=1):
        tokens = raw.split()
        if not tokens:
            continue
        try:
            values = [_value(t) for t in tokens]
        except ValueError:
            raise format_error(path, f"line {lineno}: cannot read numbers from {raw.strip()[:80]!r}") from None
        if width is None:
            width = len(values)
        elif len(values) != width:
            raise format_error(path, f"line {lineno}: {len(values)} columns, the first row has {width}")
        rows.append(values)
    if not rows or width is None:  # width is set by the first row
        raise format_error(path, "no particles")
    if width < 26:
        raise format_error(path, f"{width} columns; a Dynamo table has at least 26 (x y z are 24-26)")
    df = pd.DataFrame(rows, columns=[column_name(i) for i in range(1, width + 1)])
    for name in INT_COLUMNS:
        if name in df and np.all(np.mod(df[name], 1) == 0):
            df[name] = df[name].astype(np.int64)
    return df


def write_tbl(df: pd.DataFrame, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write a .tbl (columns in Dynamo order, 'g' format with 10 significant digits: 1e-4 px at 10⁵ px)."""
    lines = []
    for row in df.itertuples(index=False):
        lines.append(" ".join(str(v) if isinstance(v, (int, np.integer)) else f"{v:.10g}" for v in row))
    return write_text_atomic(path, "\n".join(lines) + "\n", overwrite)


def tbl_positions_A(
    df: pd.DataFrame, pixel_size_A: float, tomogram_size_px: tuple[int, int, int] | dict[int, tuple[int, int, int]]
) -> np.ndarray:
    """(n, 3) particle positions in Å from the tomogram centre: ((x, y, z) + (dx, dy, dz) − size/2) · pixel size.

    Dynamo's x + dx is the value teamtomo's dynamo2relion writes as rlnCoordinateX, so this agrees
    with tomoforge.io.star for RELION pixel coordinates. ``tomogram_size_px`` is (nx, ny, nz), or
    {tomo index: (nx, ny, nz)} for a table with several tomograms.
    """
    pos: np.ndarray = df[["x", "y", "z"]].to_numpy(dtype=float) + df[["dx", "dy", "dz"]].to_numpy(dtype=float)
    if isinstance(tomogram_size_px, dict):
        try:
            size = np.array([tomogram_size_px[int(t)] for t in df["tomo"]], dtype=float)
        except KeyError as exc:
            raise ValueError(f"no tomogram size for tomo index {exc.args[0]}") from None
    else:
        size = np.asarray(tomogram_size_px, dtype=float).reshape(1, 3)
    return (pos - size / 2.0) * float(pixel_size_A)


def tbl_rotations(df: pd.DataFrame) -> np.ndarray:
    """(n, 3, 3) rotations (reference -> tomogram) from tdrot, tilt, narot."""
    return dynamo_euler_to_matrix(*df[["tdrot", "tilt", "narot"]].to_numpy(dtype=float).T)


def set_tbl_rotations(df: pd.DataFrame, rotations: np.ndarray) -> pd.DataFrame:
    """A copy of ``df`` with tdrot, tilt, narot set from (n, 3, 3) rotations."""
    out = df.copy()
    out[["tdrot", "tilt", "narot"]] = matrix_to_dynamo_euler(rotations)
    return out


def tbl_from_arrays(
    positions_A: np.ndarray,
    rotations: np.ndarray,
    pixel_size_A: float,
    tomogram_size_px: tuple[int, int, int],
    *,
    tomo: int = 1,
    scores: np.ndarray | None = None,
    tags: np.ndarray | None = None,
) -> pd.DataFrame:
    """A 36-column Dynamo table of one tomogram: x y z (px from the corner, the inverse of ``tbl_positions_A``,
    dx = dy = dz = 0), tdrot tilt narot from the rotations (n, 3, 3), cc the score (0 where NaN or none), tomo,
    tags 1 … n unless given, aligned = averaged = class = 1 and apix the pixel size (Å)."""
    positions = np.asarray(positions_A, dtype=np.float64).reshape(-1, 3)
    n = len(positions)
    table = pd.DataFrame(0.0, index=np.arange(n), columns=[column_name(i) for i in range(1, 37)])
    table["tag"] = np.arange(1, n + 1) if tags is None else np.asarray(tags, dtype=np.int64)
    for name in ("aligned", "averaged", "class"):
        table[name] = 1
    for name in ("ftype", "reg", "annotation"):
        table[name] = 0
    table["tomo"] = int(tomo)
    table[["x", "y", "z"]] = positions / float(pixel_size_A) + np.asarray(tomogram_size_px, dtype=np.float64) / 2.0
    if scores is not None:
        table["cc"] = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)
    table["apix"] = float(pixel_size_A)
    for name in INT_COLUMNS:
        table[name] = table[name].astype(np.int64)
    return set_tbl_rotations(table, np.asarray(rotations, dtype=np.float64).reshape(n, 3, 3))


__all__ = [
    "column_name",
    "read_tbl",
    "set_tbl_rotations",
    "tbl_from_arrays",
    "tbl_positions_A",
    "tbl_rotations",
    "write_tbl",
]
