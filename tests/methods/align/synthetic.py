"""Synthetic ground truth for the alignment tests: beads on two level surfaces, a known model."""

from __future__ import annotations

import numpy as np

from tomoforge.methods.align.projection_model import ProjectionModel


def bead_points(
    rng: np.random.Generator, count: int = 16, half_width_A: float = 1300.0, thickness_A: float = 900.0
) -> np.ndarray:
    """(count, 3) bead centres (Å) spread in x, y, half on each level surface z = ±thickness/2."""
    xy = rng.uniform(-half_width_A, half_width_A, (count, 2))
    z = np.where(np.arange(count) < count // 2, -thickness_A / 2, thickness_A / 2)
    return np.c_[xy, z]


def true_model(
    rng: np.random.Generator,
    tilts_deg: np.ndarray,
    axis_deg: float = 85.0,
    offset_deg: float = 0.7,
    drift_deg: float = 0.3,
    shift_sigma_A: float = 40.0,
    magnification: np.ndarray | None = None,
) -> ProjectionModel:
    """Tilts = nominal + offset, ZRot = axis + a linear drift, random-walk shifts (Å)."""
    n = len(tilts_deg)
    order = np.argsort(np.argsort(tilts_deg))
    return ProjectionModel(
        np.asarray(tilts_deg) + offset_deg,
        axis_deg + drift_deg * order / max(n - 1, 1),
        np.cumsum(rng.normal(0, shift_sigma_A, (n, 2)), axis=0),
        magnification=magnification,
    )


def render_beads(
    model: ProjectionModel,
    points_A: np.ndarray,
    shape: tuple[int, int],
    pixel_size_A: float,
    diameter_A: float = 100.0,
    noise_sd: float = 0.0,
    rng: np.random.Generator | None = None,
    background_sd: float = 0.0,
) -> np.ndarray:
    """(n, y, x) float32 images of dark beads (projected spheres, depth 1 at the centre) where
    ``model`` puts ``points_A``, plus white noise and a smooth random background."""
    rng = rng or np.random.default_rng(0)
    uv = model.project_px(points_A, pixel_size_A)  # (n, m, 2)
    yy = (np.arange(shape[0]) - shape[0] // 2)[None, :, None]
    xx = (np.arange(shape[1]) - shape[1] // 2)[None, None, :]
    r = diameter_A / 2 / pixel_size_A
    images = np.zeros((model.n_views, *shape))
    for j in range(uv.shape[1]):
        d2 = (xx - uv[:, j, 0, None, None]) ** 2 + (yy - uv[:, j, 1, None, None]) ** 2
        images -= np.sqrt(np.clip(1 - d2 / r**2, 0, None))
    if background_sd:
        from scipy.ndimage import gaussian_filter

        bg = gaussian_filter(rng.normal(size=images.shape), (0, 12, 12))
        images += bg / bg.std() * background_sd
    images += rng.normal(0, noise_sd, images.shape) if noise_sd else 0.0
    return images.astype(np.float32)
