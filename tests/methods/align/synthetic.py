"""Synthetic ground truth for the alignment tests: beads on two level surfaces, a known model."""
from __future__ import annotations

import numpy as np

from tomoforge.methods.align.projection_model import ProjectionModel


def bead_points(rng: np.random.Generator, count: int = 16, half_width_A: float = 1300.0,
                thickness_A: float = 900.0) -> np.ndarray:
    """(count, 3) bead centres (Å) spread in x, y, half on each level surface z = ±thickness/2."""
    xy = rng.uniform(-half_width_A, half_width_A, (count, 2))
    z = np.where(np.arange(count) < count // 2, -thickness_A / 2, thickness_A / 2)
    return np.c_[xy, z]


def true_model(rng: np.random.Generator, tilts_deg: np.ndarray, axis_deg: float = 85.0, offset_deg: float = 0.7,
               drift_deg: float = 0.3, shift_sigma_A: float = 40.0, magnification: np.ndarray | None = None
               ) -> ProjectionModel:
    """Tilts = nominal + offset, ZRot = axis + a linear drift, random-walk shifts (Å)."""
    n = len(tilts_deg)
    order = np.argsort(np.argsort(tilts_deg))
    return ProjectionModel(np.asarray(tilts_deg) + offset_deg, axis_deg + drift_deg * order / max(n - 1, 1),
                           np.cumsum(rng.normal(0, shift_sigma_A, (n, 2)), axis=0), magnification=magnification)
