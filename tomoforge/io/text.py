"""Plain-text coordinate lists: one ``x y z`` per line (whitespace or comma separated,
``#`` comments, blank lines ignored). Units are whatever the caller says (pixels or Å)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import format_error, parse_number_table


def read_coordinates_text(path: str | os.PathLike[str]) -> np.ndarray:
    """(n, 3) float array of x, y, z; FormatError naming the line on a bad or short row."""
    rows = parse_number_table(path, ncols=3, what="row")
    if not rows:
        raise format_error(path, "no coordinates")
    return np.array(rows, dtype=float)


def write_coordinates_text(
    path: str | os.PathLike[str], xyz: np.ndarray, *, header: str = "", overwrite: bool = False
) -> Path:
    """Write one ``x y z`` line per row of ``xyz`` (n, 3) with 10 significant digits, after an optional
    ``# header`` line; whole or not at all. ``read_coordinates_text`` reads it back."""
    from .errors import write_text_atomic

    values = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    lines = [f"# {header}"] if header else []
    lines += [f"{x:.10g} {y:.10g} {z:.10g}" for x, y, z in values.tolist()]
    return write_text_atomic(path, "\n".join(lines) + "\n", overwrite)


__all__ = ["read_coordinates_text", "write_coordinates_text"]
