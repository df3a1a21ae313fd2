"""Task functions of the alignment protocols: files in, small metadata out (run in workers).

Landmark tables (``.tsv``): columns ``landmark, view, x_px, y_px`` (+ ``residual_x_px, residual_y_px``),
``view`` the acquisition order, positions in pixels from the image centre (index n // 2) at the
landmark model's pixel size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tomoforge.io.mrc import write_mrc
from tomoforge.methods.align.beads import (
    bead_score,
    detect_beads,
    fill_gaps,
    track_beads,
)
from tomoforge.methods.align.coarse import coarse_alignment
from tomoforge.methods.align.solve import (
    MIN_LANDMARKS,
    MIN_VIEWS,
    TooFewLandmarksError,
    check_landmarks,
    solve_fiducial_alignment,
)
from tomoforge.methods.align.transform import aligned_stack
from tomoforge.methods.binning import bin_images
from tomoforge.protocols.tilt_stacks import read_images


def load_binned(sources: list[tuple[str, int]], binning: float) -> np.ndarray:
    """The images named by (file, index) pairs, Fourier-binned by ``binning``."""
    return bin_images(read_images(sources), binning).numpy()


def coarse_task(
    sources: list[tuple[str, int]],
    tilts: list[float],
    axis_deg: float,
    pixel_size_A: float,
    binning: float,
    cumulative: bool,
    low_cut_A: float,
    high_cut_A: float,
    aligned_out: str,
    aligned_binning: float,
    refine_iterations: int = 3,
    thickness_A: float | None = None,
) -> dict[str, Any]:
    """Coarse shifts (Å) of the views, the specimen slab thickness (Å) the refinement used and the
    RMS correction per refinement round (Å); writes the interpolated stack when ``aligned_out`` is set."""
    images = load_binned(sources, binning)
    px = pixel_size_A * binning
    res = coarse_alignment(
        images,
        np.asarray(tilts),
        axis_deg,
        low_cut_A / px if low_cut_A else 0.0,
        high_cut_A / px,
        cumulative,
        refine_iterations=refine_iterations,
        thickness_px=thickness_A / px if thickness_A else None,
    )
    shifts = res.shifts_px
    result: dict[str, Any] = {
        "shifts_A": (shifts * px).tolist(),
        "thickness_A": None if res.thickness_px is None else res.thickness_px * px,
        "step_rms_A": [r * px for r in res.step_rms_px],
    }
    if aligned_out:
        full = read_images(sources)
        out = aligned_stack(full, np.full(len(tilts), axis_deg), shifts * binning, aligned_binning).numpy()
        write_mrc(aligned_out, out.astype(np.float32), pixel_size_A * aligned_binning, overwrite=True)
        result["aligned_file"] = aligned_out
    return result


def write_landmarks(
    path: str, positions_px: np.ndarray, orders: list[int], residuals_px: np.ndarray | None = None
) -> int:
    """Write (n_views, n_landmarks, 2) positions (NaN = gap) as a landmark table; returns the count."""
    v, b = np.nonzero(np.all(np.isfinite(positions_px), axis=-1))
    table = pd.DataFrame(
        {"landmark": b + 1, "view": np.asarray(orders)[v], "x_px": positions_px[v, b, 0], "y_px": positions_px[v, b, 1]}
    )
    if residuals_px is not None:
        table["residual_x_px"], table["residual_y_px"] = residuals_px[v, b, 0], residuals_px[v, b, 1]
    table.sort_values(["landmark", "view"]).to_csv(path, sep="\t", index=False, float_format="%.3f")
    return int(len(np.unique(b)))


def read_landmarks(path: str, orders: list[int]) -> np.ndarray:
    """(n_views, n_landmarks, 2) positions from a landmark table, views in ``orders``; NaN gaps."""
    table = pd.read_csv(path, sep="\t")
    ids = np.unique(table["landmark"].to_numpy())
    out = np.full((len(orders), len(ids), 2), np.nan)
    view_index = {o: i for i, o in enumerate(orders)}
    bead_index = {int(k): j for j, k in enumerate(ids)}
    for row in table.itertuples():
        if int(row.view) in view_index:
            out[view_index[int(row.view)], bead_index[int(row.landmark)]] = (row.x_px, row.y_px)
    return out


def fiducial_model_task(
    sources: list[tuple[str, int]],
    tilts: list[float],
    orders: list[int],
    axis_deg: float,
    shifts_A: list[list[float]],
    pixel_size_A: float,
    binning: float,
    diameter_nm: float,
    max_beads: int,
    threshold_sd: float,
    out_file: str,
) -> dict[str, Any]:
    """Detect and track beads, fill gaps from a first model fit; write the landmark table."""
    images = load_binned(sources, binning)
    px = pixel_size_A * binning
    diameter_px = diameter_nm * 10.0 / px
    track = track_beads(
        images,
        np.asarray(tilts),
        axis_deg,
        diameter_px,
        np.asarray(shifts_A) / px,
        max_beads=max_beads,
        threshold_sd=threshold_sd,
    )
    min_views = max(MIN_VIEWS, len(tilts) // 4)
    keep = np.isfinite(track[..., 0]).sum(axis=0) >= min_views
    if keep.sum() < MIN_LANDMARKS:
        raise TooFewLandmarksError(
            too_few_beads_message(
                images,
                tilts,
                diameter_px,
                diameter_nm,
                binning,
                threshold_sd,
                track.shape[1],
                int(keep.sum()),
                min_views,
            )
        )
    track = track[:, keep]
    first = solve_fiducial_alignment(track, np.asarray(tilts), axis_deg, px, rotation="single", tilt="fixed")
    track = fill_gaps(track, first.gap_free_px(px), images, diameter_px)
    n = write_landmarks(out_file, track, orders)
    return {"file": out_file, "n_landmarks": n, "pixel_size_A": px}


def too_few_beads_message(
    images: np.ndarray,
    tilts: list[float],
    diameter_px: float,
    diameter_nm: float,
    binning: float,
    threshold_sd: float,
    seeded: int,
    kept: int,
    min_views: int,
) -> str:
    """Why a fiducial model has fewer beads than an alignment needs, with the strongest bead-like peak of the
    least tilted view (in the detection's SD units) and what to try."""
    ref = int(np.argmin(np.abs(np.asarray(tilts))))
    score = bead_score(images[ref], diameter_px).numpy()[0]
    _, heights = detect_beads(score, diameter_px, threshold_sd=-np.inf, max_count=1)
    best = f"{heights[0]:.1f}" if len(heights) else "none"
    return (
        f"{kept} gold bead(s) tracked through {min_views} views or more (an alignment needs {MIN_LANDMARKS}); "
        f"{seeded} found on the {tilts[ref]:+.1f}° view above threshold_sd {threshold_sd:g} (its strongest "
        f"bead-like peak: {best} SD), bead diameter {diameter_nm:g} nm = {diameter_px:.1f} px at binning "
        f"{binning:g}: check bead_diameter_nm, lower threshold_sd, bin less if a bead is under ~4 px, or use "
        "patch-tracking for a specimen without gold"
    )


def fiducial_alignment_task(
    table: str,
    tilts: list[float],
    orders: list[int],
    axis_deg: float,
    pixel_size_A: float,
    options: dict[str, Any],
    out_file: str,
    gap_free_file: str,
    shifts_A: list[list[float]] | None = None,
) -> dict[str, Any]:
    """Solve the projection model from a landmark table; write residual and gap-free tables. Views
    where no bead was kept take their current shift (``shifts_A``, e.g. the coarse alignment's)."""
    positions = read_landmarks(table, orders)
    check_landmarks(
        positions,
        "beads",
        f"the landmark model {Path(table).name} is too sparse: make a new one "
        "(fiducial-model: check bead_diameter_nm, lower threshold_sd) or use patch-tracking",
    )
    prior = None if shifts_A is None else np.asarray(shifts_A, dtype=float) / pixel_size_A
    sol = solve_fiducial_alignment(
        positions, np.asarray(tilts), axis_deg, pixel_size_A, prior_shifts_px=prior, **options
    )
    write_landmarks(out_file, positions, orders, sol.residuals_px)
    gap_free = sol.gap_free_px(pixel_size_A)
    gap_free[:, sol.dropped_beads] = np.nan
    write_landmarks(gap_free_file, gap_free, orders)
    m = sol.model
    return {
        "y_tilt_deg": m.tilt_deg.tolist(),
        "z_rot_deg": m.z_rot_deg.tolist(),
        "shifts_A": m.shift_A.tolist(),
        "magnification": m.magnification.tolist(),
        "rms_px": sol.rms_px,
        "view_rms_px": np.nan_to_num(sol.view_rms_px, nan=-1).tolist(),
        "dropped": [int(b) + 1 for b in sol.dropped_beads],
        "tilt_axis_deg": sol.tilt_axis_deg,
        "tilt_offset_deg": sol.tilt_offset_deg,
        "n_landmarks": int(positions.shape[1] - len(sol.dropped_beads)),
        "surfaces": int(len(set(sol.surface[sol.surface >= 0].tolist()))),
        "unobserved": [int(orders[v]) for v in sol.unobserved_views],
    }


def identity(value: Any) -> Any:
    """A task for protocols whose work is all bookkeeping (returns its argument)."""
    return value


def path_exists(path: str) -> str:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: alignment file not found")
    return path


__all__ = [
    "coarse_task",
    "write_landmarks",
    "read_landmarks",
    "fiducial_model_task",
    "too_few_beads_message",
    "fiducial_alignment_task",
    "identity",
    "path_exists",
]
