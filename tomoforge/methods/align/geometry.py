"""The tilt axis and the tilt offset of a tilt series by projection matching, without markers.

A view rotated in-plane by the same wrong angle δ as all the others is consistent with them only near
zero tilt: at tilt β content at a distance y along the axis lands about δ·y·(1 − cos β) across it from
where the reprojection of the other views puts it. So the axis is the angle that maximises the mean
normalised correlation of every view with the reprojection of the others (``reproject.reprojections``),
found on a grid about the given angle and refined by a parabola through the best three.

A common tilt offset is invisible to projections (adding δ to every tilt and turning the specimen by
−δ about the tilt axis projects the same), so it is chosen as fiducial alignment chooses it: the one
that makes the specimen level. Reconstructed with the tilts off by δ, a level slab appears turned by δ
about the tilt axis: its mid-surface (the centroid, per block across the axis, of the variance of a
weighted back-projection per height) has the slope −tan δ.

Views are (n, y, x) band-passed images; shifts are (x, y) pixels (where the specimen centre lands);
angles in degrees (axis from image Y, counter-clockwise).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.typing import ArrayLike

from tomoforge.methods.align.filters import edge_taper
from tomoforge.methods.align.reproject import (
    Refinement,
    _sample_rows,
    ramp_filter,
    refine_by_reprojection,
    reprojections,
    specimen_slab,
)
from tomoforge.methods.align.transform import rotation_2d, warp_images
from tomoforge.methods.binning import bin_images
from tomoforge.methods.fourier import as_tensor


def _axis_frame(x: torch.Tensor, axis_deg: float, shifts_px: np.ndarray, taper: torch.Tensor) -> torch.Tensor:
    views = warp_images(x, rotation_2d(axis_deg), shifts_px) * taper
    return views - views.mean(dim=(-2, -1), keepdim=True)


def view_scores(
    filtered: torch.Tensor,
    tilts_deg: ArrayLike,
    axis_deg: float,
    shifts_px: np.ndarray,
    thickness_px: float,
    z_centre_px: float,
    taper: torch.Tensor,
) -> np.ndarray:
    """(n,) normalised correlation (at zero lag) of each view with the reprojection of the others."""
    views = _axis_frame(filtered, axis_deg, shifts_px, taper)
    refs, _ = reprojections(views, tilts_deg, thickness_px, z_centre_px=z_centre_px)
    refs = refs * taper
    num = (views * refs).sum(dim=(-2, -1))
    den = (views.norm(dim=(-2, -1)) * refs.norm(dim=(-2, -1))).clamp(min=1e-12)
    return (num / den).cpu().numpy().astype(float)


def search_tilt_axis(
    filtered: torch.Tensor,
    tilts_deg: ArrayLike,
    axis_deg: float,
    shifts_px: np.ndarray,
    thickness_px: float,
    z_centre_px: float,
    taper: torch.Tensor,
    *,
    half_range_deg: float = 2.0,
    step_deg: float = 0.5,
) -> tuple[float, float]:
    """The tilt axis angle (degrees) within ``half_range_deg`` of ``axis_deg`` that maximises the mean
    ``view_scores``, and that score; the grid's best three by a parabola (an edge of the grid: the edge)."""
    grid = axis_deg + np.arange(-half_range_deg, half_range_deg + 1e-9, step_deg)
    scores = np.array(
        [view_scores(filtered, tilts_deg, a, shifts_px, thickness_px, z_centre_px, taper).mean() for a in grid]
    )
    k = int(np.argmax(scores))
    if 0 < k < len(grid) - 1:
        lo, mid, hi = scores[k - 1], scores[k], scores[k + 1]
        curve = lo - 2 * mid + hi
        frac = 0.5 * (lo - hi) / curve if curve < 0 else 0.0
        return float(grid[k] + np.clip(frac, -0.5, 0.5) * step_deg), float(mid)
    return float(grid[k]), float(scores[k])


def slab_offset_deg(
    axis_stack: torch.Tensor,
    tilts_deg: ArrayLike,
    thickness_px: float,
    z_centre_px: float,
    *,
    blocks: int = 8,
    row_step: int = 2,
    fraction: float = 0.15,
) -> float:
    """The tilt offset (degrees, to add to ``tilts_deg``) that makes the specimen level.

    ``axis_stack``: (n, y, x) views in the tilt-axis frame (x across the axis, shifts removed). The
    middle two thirds across the axis are cut into ``blocks``; in each, the variance of a weighted
    back-projection per height (over heights within ``thickness_px`` of ``z_centre_px``) gives the
    specimen's extent (``reproject.specimen_slab``: where the variance rises ``fraction`` of the way from
    its median to its peak): its middle is the mid-surface there. Material is scattered through the slab,
    so the extent, set by the outermost objects, follows the slab's surfaces more closely than the
    centroid. A line through the middles (least squares, the blocks with no clear extent left out) has
    the slope −tan(offset); 0 when fewer than 3 blocks show the specimen."""
    p = ramp_filter(axis_stack[:, ::row_step])
    n, ny, nx = p.shape
    rad = np.deg2rad(np.asarray(tilts_deg, dtype=float))
    x = np.arange(nx) - nx // 2
    lo, hi = nx // 6, nx - nx // 6
    width = (hi - lo) // blocks
    heights = z_centre_px + np.arange(-thickness_px, thickness_px + 1e-6, 1.0)
    variance = np.empty((len(heights), blocks))
    for k, z in enumerate(heights):
        pos = np.cos(rad)[:, None] * x[None] + np.sin(rad)[:, None] * z + nx // 2
        section = _sample_rows(p, torch.as_tensor(pos, dtype=torch.float32, device=p.device)).sum(0)
        cut = section[:, lo : lo + blocks * width].reshape(ny, blocks, width)
        variance[k] = cut.var(dim=(0, 2)).cpu().numpy()
    xb = lo + width * (np.arange(blocks) + 0.5) - nx // 2
    middles = [(xb[b], specimen_slab(heights, variance[:, b], fraction=fraction)) for b in range(blocks)]
    found = np.array([(xv, s[0]) for xv, s in middles if s is not None])
    if len(found) < 3:
        return 0.0
    slope = np.polyfit(found[:, 0], found[:, 1], 1)[0]
    return float(-np.rad2deg(np.arctan(slope)))


def intensity_offset_deg(
    view_means: ArrayLike, tilts_deg: ArrayLike, *, half_range_deg: float = 10.0, min_explained: float = 0.9
) -> float | None:
    """The tilt offset (degrees, to add to ``tilts_deg``) at which the beam crosses the specimen slab
    perpendicularly, from the mean intensity of each view (Beer–Lambert: ln I = ln I₀ − (T/λ) / cos(β + δ),
    T the slab thickness, λ the inelastic mean free path): the offset that levels the slab, as levelling
    beads does. A grid of δ (0.01°) with ln I₀ and T/λ by linear least squares at each; None when the
    means are not all positive, the attenuation is not positive, or the fit explains less than
    ``min_explained`` of the variance of ln I (normalised images, a dose that varies between views)."""
    means = np.asarray(view_means, dtype=float)
    tilts = np.asarray(tilts_deg, dtype=float)
    if len(means) < 5 or np.any(means <= 0) or not np.all(np.isfinite(means)):
        return None
    y = np.log(means)
    spread = float(np.sum((y - y.mean()) ** 2))
    if spread <= 0:
        return None
    grid = np.arange(-half_range_deg, half_range_deg + 1e-9, 0.01)
    secant = 1.0 / np.cos(np.deg2rad(tilts[None, :] + grid[:, None]))  # (g, n)
    s_c = secant - secant.mean(axis=1, keepdims=True)
    y_c = y - y.mean()
    slope = (s_c @ y_c) / np.maximum(np.sum(s_c**2, axis=1), 1e-30)  # = −T/λ
    misfit = np.sum((y_c[None, :] - slope[:, None] * s_c) ** 2, axis=1)
    k = int(np.argmin(misfit))
    if slope[k] >= 0 or 1.0 - misfit[k] / spread < min_explained:
        return None
    return float(grid[k])


def attenuation_thickness(view_means: ArrayLike, tilts_deg: ArrayLike, offset_deg: float = 0.0) -> float | None:
    """The specimen's thickness in inelastic mean free paths, T/λ, from the views' mean intensities
    (Beer–Lambert: ln I = ln I₀ − (T/λ) / cos(β + δ), by linear least squares at the tilt offset δ); None when
    the means are not all positive and finite or do not fall with the path. A check of the slab that
    projection matching finds (λ ≈ 3500 Å in ice at 300 kV)."""
    means = np.asarray(view_means, dtype=float)
    if len(means) < 3 or np.any(means <= 0) or not np.all(np.isfinite(means)):
        return None
    secant = 1.0 / np.cos(np.deg2rad(np.asarray(tilts_deg, dtype=float) + offset_deg))
    slope = np.polyfit(secant, np.log(means), 1)[0]
    return float(-slope) if slope < 0 else None


@dataclass
class GeometryRefinement:
    """Shifts (px), tilt axis and tilt offset (degrees) found by projection matching, and per view the
    residual: the last correction (px) and the correlation with the reprojection of the others."""

    shifts_px: np.ndarray  # (n, 2)
    tilt_axis_deg: float
    tilt_offset_deg: float
    thickness_px: float
    z_centre_px: float
    step_rms_px: list[float] = field(default_factory=list)
    view_residual_px: np.ndarray = field(default_factory=lambda: np.zeros(0))
    view_score: np.ndarray = field(default_factory=lambda: np.zeros(0))
    thickness_mfp: float | None = None  # T/λ from the view means where they follow Beer–Lambert (else None)


def refine_geometry(
    filtered: ArrayLike | torch.Tensor,
    tilts_deg: ArrayLike,
    tilt_axis_deg: float,
    shifts_px: ArrayLike,
    *,
    iterations: int = 3,
    thickness_px: float | None = None,
    axis_range_deg: float = 2.0,
    level: bool = True,
    view_means: ArrayLike | None = None,
    taper_px: float | None = None,
) -> GeometryRefinement:
    """Shifts, tilt axis and tilt offset by projection matching.

    Parameters
    ----------
    filtered, tilts_deg, tilt_axis_deg, shifts_px
        (n, y, x) band-passed views, their (n,) nominal tilts, the starting tilt axis (degrees) and
        (n, 2) starting (x, y) shifts (pixels).
    iterations
        Rounds of shift refinement before and after the axis search.
    thickness_px
        Specimen slab thickness, pixels (default: found from the data).
    axis_range_deg
        Search the tilt axis within this of ``tilt_axis_deg`` (0: keep it).
    level
        Choose the tilt offset that makes the specimen level (else 0): from ``view_means`` where they follow
        Beer–Lambert's law (``intensity_offset_deg``), else from the slab's extent (``slab_offset_deg``).
    view_means
        (n,) mean intensity of each view before any filtering (None: not known).
    taper_px
        Width of the edge taper, pixels (default a tenth of the image).

    Returns
    -------
    GeometryRefinement
        Shifts (pixels, slab centre at height 0, lowest tilt at 0), the axis and offset (degrees), the slab
        and the per-view residuals.
    """
    x = as_tensor(filtered)
    n, ny, nx = x.shape
    tilts = np.asarray(tilts_deg, dtype=float)
    taper = edge_taper((ny, nx), taper_px or min(ny, nx) / 10, x.device)
    axis = float(tilt_axis_deg)
    ref: Refinement = refine_by_reprojection(
        x, tilts, axis, shifts_px, iterations=iterations, thickness_px=thickness_px, taper_px=taper_px
    )
    steps = list(ref.step_rms_px)
    if axis_range_deg > 0:
        # the wide search at half the sampling where the views are large enough (a quarter of the work)
        f = 2 if min(ny, nx) >= 192 else 1
        xs = bin_images(x, f) if f > 1 else x
        ts = edge_taper((int(xs.shape[-2]), int(xs.shape[-1])), (taper_px or min(ny, nx) / 10) / f, x.device)
        args = (ref.shifts_px / f, ref.thickness_px / f, 0.0, ts)
        axis, _ = search_tilt_axis(xs, tilts, axis, *args, half_range_deg=axis_range_deg, step_deg=1.0)
        axis, _ = search_tilt_axis(
            x, tilts, axis, ref.shifts_px, ref.thickness_px, 0.0, taper, half_range_deg=0.5, step_deg=0.25
        )
        ref = refine_by_reprojection(
            x, tilts, axis, ref.shifts_px, iterations=iterations, thickness_px=ref.thickness_px, taper_px=taper_px
        )
        steps += ref.step_rms_px
    offset = 0.0
    from_means = None if view_means is None or not level else intensity_offset_deg(view_means, tilts)
    thickness_mfp = None
    if from_means is not None and view_means is not None:
        offset = from_means
        thickness_mfp = attenuation_thickness(view_means, tilts, offset)
    elif level:
        offset = slab_offset_deg(_axis_frame(x, axis, ref.shifts_px, taper), tilts, ref.thickness_px, 0.0)
    return GeometryRefinement(
        shifts_px=ref.shifts_px,
        tilt_axis_deg=axis,
        tilt_offset_deg=offset,
        thickness_px=ref.thickness_px,
        z_centre_px=ref.z_centre_px,
        step_rms_px=steps,
        view_residual_px=ref.view_residual_px,
        view_score=view_scores(x, tilts + offset, axis, ref.shifts_px, ref.thickness_px, 0.0, taper),
        thickness_mfp=thickness_mfp,
    )


__all__ = [
    "GeometryRefinement",
    "attenuation_thickness",
    "intensity_offset_deg",
    "refine_geometry",
    "search_tilt_axis",
    "slab_offset_deg",
    "view_scores",
]
