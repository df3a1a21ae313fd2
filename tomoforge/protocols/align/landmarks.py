"""Landmark tables (``.tsv``) written and read by the alignment tasks.

Columns ``landmark, view, x_px, y_px`` (+ ``residual_x_px, residual_y_px``), ``view`` the acquisition order,
positions in pixels from the image centre (index n // 2) at the landmark model's pixel size.
"""

from __future__ import annotations

import numpy as np


def write_landmarks(
    path: str, positions_px: np.ndarray, orders: list[int], residuals_px: np.ndarray | None = None
) -> int:
    """Write (n_views, n_landmarks, 2) positions (pixels, NaN = gap) as a landmark table, with the
    (n_views, n_landmarks, 2) ``residuals_px`` when given; returns the number of landmarks written."""
    import pandas as pd

    v, b = np.nonzero(np.all(np.isfinite(positions_px), axis=-1))
    table = pd.DataFrame(
        {"landmark": b + 1, "view": np.asarray(orders)[v], "x_px": positions_px[v, b, 0], "y_px": positions_px[v, b, 1]}
    )
    if residuals_px is not None:
        table["residual_x_px"], table["residual_y_px"] = residuals_px[v, b, 0], residuals_px[v, b, 1]
    table.sort_values(["landmark", "view"]).to_csv(path, sep="\t", index=False, float_format="%.3f")
    return int(len(np.unique(b)))


def read_landmarks(path: str, orders: list[int]) -> np.ndarray:
    """(n_views, n_landmarks, 2) positions (pixels) from a landmark table, views in ``orders``; NaN gaps."""
    import pandas as pd

    table = pd.read_csv(path, sep="\t")
    marks, views = table["landmark"].to_numpy(), table["view"].to_numpy().astype(int)
    ids = np.unique(marks)
    out = np.full((len(orders), len(ids), 2), np.nan)
    known = np.asarray(orders, dtype=int)
    if len(known) == 0:
        return out
    sorter = np.argsort(known)
    vi = sorter[np.clip(np.searchsorted(known, views, sorter=sorter), 0, len(known) - 1)]
    kept = known[vi] == views  # rows of views not in ``orders`` are left out
    out[vi[kept], np.searchsorted(ids, marks[kept])] = table[["x_px", "y_px"]].to_numpy(dtype=float)[kept]
    return out


__all__ = ["read_landmarks", "write_landmarks"]
