"""Alignment consensus: per-view differences between two alignments of the same tilt series.

Both alignments are ``ProjectionModel``s of the same views (same order). Per view: the shift
difference (Å, a − b, as stored: it includes any common translation, the free gauge of an
alignment), the in-plane rotation difference (ZRot, wrapped to (−180°, 180°]), the tilt difference,
and the reprojection difference of a grid of 3D points after removing the best common 3D
translation (what matters downstream: two alignments that differ only by moving the tomogram
centre reproject identically).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from tomoforge.methods.align.projection_model import ProjectionModel, reprojection_difference


def point_grid(half_width_A: float, half_thickness_A: float, *, count: int = 5) -> np.ndarray:
    """(count² · 3, 3) points (Å) on a count × count grid in x, y and three heights (−, 0, +) in z."""
    g = np.linspace(-1.0, 1.0, count)
    x, y, z = np.meshgrid(
        g * half_width_A, g * half_width_A, np.array([-1.0, 0.0, 1.0]) * half_thickness_A, indexing="ij"
    )
    return np.c_[x.ravel(), y.ravel(), z.ravel()]


def wrap_deg(angle_deg: ArrayLike) -> np.ndarray:
    """Angles wrapped to (−180°, 180°]."""
    a = np.asarray(angle_deg, dtype=float)
    return 180.0 - np.mod(180.0 - a, 360.0)


def compare_alignments(
    model_a: ProjectionModel, model_b: ProjectionModel, points_A: np.ndarray, *, pixel_size_A: float = 1.0
) -> dict[str, np.ndarray]:
    """Per-view differences (a − b) between two alignments of the same views.

    Returns arrays of length n: ``shift_x_A``, ``shift_y_A``, ``shift_A`` (length), ``z_rot_deg``,
    ``tilt_deg``, ``x_tilt_deg``, ``reprojection_rms_A`` and ``reprojection_max_A`` (over
    ``points_A``, common translation removed) and ``reprojection_rms_px`` (at ``pixel_size_A``).
    """
    if model_a.n_views != model_b.n_views:
        raise ValueError(f"alignments of {model_a.n_views} and {model_b.n_views} views cannot be compared")
    shift = model_a.shift_A - model_b.shift_A
    diff = reprojection_difference(model_a, model_b, points_A, remove_translation=True)  # (n, m, 2)
    length = np.linalg.norm(diff, axis=-1)
    view_rms = np.sqrt(np.mean(length**2, axis=1))
    return {
        "shift_x_A": shift[:, 0],
        "shift_y_A": shift[:, 1],
        "shift_A": np.linalg.norm(shift, axis=1),
        "z_rot_deg": wrap_deg(model_a.z_rot_deg - model_b.z_rot_deg),
        "tilt_deg": model_a.tilt_deg - model_b.tilt_deg,
        "x_tilt_deg": model_a.x_tilt_deg - model_b.x_tilt_deg,
        "reprojection_rms_A": view_rms,
        "reprojection_max_A": length.max(axis=1),
        "reprojection_rms_px": view_rms / float(pixel_size_A),
    }


def summarise(report: dict[str, np.ndarray]) -> dict[str, float | int]:
    """Overall figures of a ``compare_alignments`` report: RMS reprojection (Å, px), worst view and
    its RMS, maximum |ZRot| and |tilt| differences."""
    worst = int(np.argmax(report["reprojection_rms_A"]))
    return {
        "reprojection_rms_A": float(np.sqrt(np.mean(report["reprojection_rms_A"] ** 2))),
        "reprojection_rms_px": float(np.sqrt(np.mean(report["reprojection_rms_px"] ** 2))),
        "worst_view": worst,
        "worst_view_rms_A": float(report["reprojection_rms_A"][worst]),
        "max_z_rot_deg": float(np.max(np.abs(report["z_rot_deg"]))),
        "max_tilt_deg": float(np.max(np.abs(report["tilt_deg"]))),
    }


__all__ = ["point_grid", "wrap_deg", "compare_alignments", "summarise"]
