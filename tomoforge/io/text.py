"""Plain-text coordinate lists: one ``x y z`` per line (whitespace or comma separated,
``#`` comments, blank lines ignored). Units are whatever the caller says (pixels or Å)."""

from __future__ import annotations

import os

import numpy as np

from .errors import format_error, parse_number_table


def read_coordinates_text(path: str | os.PathLike[str]) -> np.ndarray:
    """(n, 3) float array of x, y, z; FormatError naming the line on a bad or short row."""
    rows = parse_number_table(path, ncols=3, what="row")
    if not rows:
        raise format_error(path, "no coordinates")
    return np.array(rows, dtype=float)


__all__ = ["read_coordinates_text"]
