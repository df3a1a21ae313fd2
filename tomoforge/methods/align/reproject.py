"""Projection matching: refine coarse shifts by correlating each view with the reprojection of the others.

Stretched correlation of neighbouring views assumes a flat specimen: content at height z moves by
z·(sin β₂ − sin β₁) between two views, so with gold on both surfaces each step locks onto one surface
or the other and the error accumulates along the series. A reprojection puts content at every height
where the view sees it, so the shift it gives has no such bias (AreTomo's projection matching).

Everything is done in the tilt-axis frame (images rotated so that the axis is vertical, x across it,
shifts removed). Within one row the specimen is a 2D slab: a point (X, z) appears at
u = X cos β + z sin β. Back-projecting view i over a slab of heights [z₀ − T/2, z₀ + T/2] and
projecting at tilt β_j gives view i stretched by a = cos β_i / cos β_j and averaged over a box of
width |b|·T, b = sin β_i − sin β_j·cos β_i / cos β_j, centred at b·z₀: a cumulative sum along x
and two linear interpolations per view, no volume. A view's own term is left out of its reference
and views are ramp-filtered across the axis (weighted back-projection). All views take part: with
only the near ones, what a view sees at the slab's surfaces is smeared to one side at the two ends
of the tilt range, and the shifts there came out biased by a few pixels.

The slab (z₀, T) is found from the variance of a coarse back-projection per height. The shifts are
solved jointly: a view's correlation peak measures its own error minus the weighted mean error of the
views in its reference (weights: their overlap with the view), a linear system solved up to the free
3D translation, so that smooth errors do not need many iterations to diffuse away.

Shifts are (x, y) pixels of the input images: where the specimen centre lands in each view.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.typing import ArrayLike

from tomoforge.methods.align.filters import correlation_peak, cross_correlation, edge_taper, rotate_xy
from tomoforge.methods.align.transform import rotation_2d, warp_images
from tomoforge.methods.binning import bin_images
from tomoforge.methods.fourier import as_tensor


def ramp_filter(images: torch.Tensor) -> torch.Tensor:
    """Images (n, y, x) filtered by |k_x| + 1/n_x along x (the weighting of back-projection)."""
    nx = images.shape[-1]
    k = torch.fft.rfftfreq(nx, device=images.device)
    return torch.fft.irfft(torch.fft.rfft(images, dim=-1) * (k + 1.0 / nx), n=nx, dim=-1)


def _sample_rows(cumulative: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """``cumulative`` (m, y, L) linearly interpolated along x at fractional indices ``edges`` (m, x)."""
    length, ny = cumulative.shape[-1], cumulative.shape[1]
    pos = edges.clamp(0, length - 1.001)
    k0 = pos.floor().long()
    frac = (pos - k0).to(cumulative.dtype)[:, None, :]
    g0 = torch.gather(cumulative, 2, k0[:, None, :].expand(-1, ny, -1))
    g1 = torch.gather(cumulative, 2, (k0 + 1)[:, None, :].expand(-1, ny, -1))
    return g0 + (g1 - g0) * frac


def reprojections(
    axis_stack: torch.Tensor, tilts_deg: ArrayLike, thickness_px: float, *, z_centre_px: float = 0.0
) -> tuple[torch.Tensor, np.ndarray]:
    """(n, y, x) reprojection of all other views at each view's tilt, and (n, n) weights.

    ``axis_stack``: views in the tilt-axis frame (x across the axis), band-passed and tapered.
    Weight [j, i]: the share of view i's term in view j's reference, measured as its overlap with
    view j (≥ 0, rows sum to 1): how much an error of view i moves view j's correlation peak.
    """
    p = ramp_filter(axis_stack)
    n, ny, nx = p.shape
    # Cumulative sum at pixel edges: entry k is the sum of pixels < k (edge k sits at index k − 0.5).
    cumulative = torch.cat([torch.zeros(n, ny, 1, dtype=p.dtype, device=p.device), torch.cumsum(p, dim=-1)], dim=-1)
    rad = np.deg2rad(np.asarray(tilts_deg, dtype=float))
    cos, sin = np.cos(rad), np.sin(rad)
    u = np.arange(nx) - nx // 2
    refs = torch.zeros_like(p)
    weights = np.zeros((n, n))
    for j in range(n):
        others = np.delete(np.arange(n), j)
        a = cos[others] / cos[j]
        b = sin[others] - sin[j] * a
        half = np.maximum(np.abs(b) * thickness_px, 1.0)[:, None] / 2
        centre = a[:, None] * u[None] + b[:, None] * z_centre_px + nx // 2 + 0.5
        lo = torch.as_tensor(centre - half, dtype=torch.float32, device=p.device)
        hi = torch.as_tensor(centre + half, dtype=torch.float32, device=p.device)
        c = cumulative[others]
        terms = (_sample_rows(c, hi) - _sample_rows(c, lo)) / torch.as_tensor(
            2 * half, dtype=torch.float32, device=p.device
        )[:, None, :]
        refs[j] = terms.sum(0)
        weights[j, others] = np.maximum((terms * axis_stack[j]).sum(dim=(-2, -1)).cpu().numpy(), 0.0)
    weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-30)
    return refs, weights


def specimen_profile(
    axis_stack: torch.Tensor, tilts_deg: ArrayLike, half_range_px: float, *, step_px: float = 1.0, row_step: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Heights z (px) and the variance of a weighted back-projection at each height (every
    ``row_step``-th row, the middle two thirds across the axis): high where the specimen is."""
    p = ramp_filter(axis_stack[:, ::row_step])
    n, ny, nx = p.shape
    rad = np.deg2rad(np.asarray(tilts_deg, dtype=float))
    x = np.arange(nx) - nx // 2
    inner = slice(nx // 6, nx - nx // 6)
    heights = np.arange(-half_range_px, half_range_px + 1e-6, step_px)
    variance = np.empty(len(heights))
    for k, z in enumerate(heights):
        pos = np.cos(rad)[:, None] * x[None] + np.sin(rad)[:, None] * z + nx // 2
        volume_slice = _sample_rows(p, torch.as_tensor(pos, dtype=torch.float32, device=p.device)).sum(0)
        variance[k] = float(volume_slice[:, inner].var())
    return heights, variance


def specimen_slab(
    heights_px: np.ndarray, variance: np.ndarray, *, fraction: float = 0.15, min_run: int = 3
) -> tuple[float, float] | None:
    """(centre, thickness) in px of the heights where the variance (smoothed over 3 heights) rises
    ``fraction`` of the way from its median to its peak, from the first to the last run of at
    least ``min_run`` such heights (lone noise peaks do not count); None when the profile has no
    clear peak (peak < 1.5 × median) or no such run."""
    smooth = np.convolve(np.pad(variance, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    base, top = float(np.median(smooth)), float(smooth.max())
    if top < 1.5 * base:
        return None
    above = np.r_[False, smooth > base + fraction * (top - base), False]
    starts, ends = np.nonzero(np.diff(above.astype(int)) == 1)[0], np.nonzero(np.diff(above.astype(int)) == -1)[0]
    runs = [(a0, e0) for a0, e0 in zip(starts, ends) if e0 - a0 >= min_run]
    if not runs:
        return None
    lo, hi = heights_px[runs[0][0]], heights_px[runs[-1][1] - 1]
    return 0.5 * (lo + hi), float(hi - lo)


@dataclass
class Refinement:
    """Refined shifts (px, specimen-slab centre at height 0, lowest tilt at 0) and what was used."""

    shifts_px: np.ndarray
    z_centre_px: float  # slab centre above the plane the input shifts followed
    thickness_px: float
    step_rms_px: list[float] = field(default_factory=list)  # RMS correction per iteration
    view_residual_px: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (n,) |offset| of the last round


def _solve_errors(d: np.ndarray, weights: np.ndarray, tilts_deg: np.ndarray) -> np.ndarray:
    """Per-view errors (axis frame) from measured offsets ``d`` (n, 2): e_j − Σ_i W_ji k_ji e_i = d_j
    (k = cos β_j / cos β_i across the axis, 1 along it), least squares orthogonal to the free 3D
    translation (cos β and sin β across, a constant along)."""
    n = len(d)
    rad = np.deg2rad(tilts_deg)
    cos, sin = np.cos(rad), np.sin(rad)
    across = np.vstack([np.eye(n) - weights * (cos[:, None] / cos[None, :]), cos[None], sin[None]])
    along = np.vstack([np.eye(n) - weights, np.ones((1, n))])
    ex, *_ = np.linalg.lstsq(across, np.r_[d[:, 0], 0.0, 0.0], rcond=None)
    ey, *_ = np.linalg.lstsq(along, np.r_[d[:, 1], 0.0], rcond=None)
    return np.c_[ex, ey]


def refine_by_reprojection(
    filtered: ArrayLike | torch.Tensor,
    tilts_deg: ArrayLike,
    tilt_axis_deg: float,
    shifts_px: ArrayLike,
    *,
    iterations: int = 3,
    thickness_px: float | None = None,
    z_centre_px: float = 0.0,
    max_step_px: float | None = None,
    taper_px: float | None = None,
    tolerance_px: float = 0.02,
) -> Refinement:
    """Refine the shifts of band-passed views by projection matching.

    Parameters
    ----------
    filtered, tilts_deg, tilt_axis_deg
        (n, y, x) band-passed views, their (n,) nominal tilts and the tilt axis angle (degrees).
    shifts_px
        (n, 2) starting (x, y) shifts, pixels.
    iterations
        Rounds of projection matching at most.
    thickness_px
        Specimen slab thickness, pixels (default: found from the back-projection profile, and then
        ``z_centre_px`` is found too).
    z_centre_px
        Slab centre above the plane the input shifts follow, pixels.
    max_step_px
        Correlation search radius, pixels (default an eighth of the image).
    taper_px
        Width of the cosine edge taper, pixels (default a tenth of the image).
    tolerance_px
        Stop once the RMS correction of a round is below this, pixels.

    Returns
    -------
    Refinement
        (n, 2) refined shifts (pixels; slab centre at height 0, lowest tilt at 0), the slab used, and the
        RMS correction per round.
    """
    x = as_tensor(filtered)
    n, ny, nx = x.shape
    tilts = np.asarray(tilts_deg, dtype=float)
    taper = edge_taper((ny, nx), taper_px or min(ny, nx) / 10, x.device)
    rot = rotation_2d(tilt_axis_deg)
    shifts = np.array(shifts_px, dtype=float).reshape(n, 2)
    if thickness_px is None:
        factor = 2 if min(ny, nx) >= 128 else 1
        small = bin_images(warp_images(x, rot, shifts) * taper, factor)
        heights, variance = specimen_profile(small, tilts, 0.75 * small.shape[-1])
        slab = specimen_slab(heights * factor, variance)
        z_centre_px, thickness_px = (0.0, nx / 2) if slab is None else slab
    result = Refinement(shifts, float(z_centre_px), float(thickness_px))
    limit = max_step_px or min(ny, nx) / 8
    for _ in range(iterations):
        views = warp_images(x, rot, shifts) * taper
        views = views - views.mean(dim=(-2, -1), keepdim=True)
        refs, weights = reprojections(views, tilts, thickness_px, z_centre_px=z_centre_px)
        cc = cross_correlation(views, refs * taper)
        d = np.array([correlation_peak(cc[j], max_shift_px=limit)[0] for j in range(n)])
        step = _solve_errors(d, weights, tilts)
        result.view_residual_px = np.linalg.norm(d, axis=1)
        shifts = shifts + rotate_xy(step, tilt_axis_deg)
        result.step_rms_px.append(float(np.sqrt(np.mean(np.sum(step**2, axis=1)))))
        if result.step_rms_px[-1] < tolerance_px:
            break
    # Gauge: the slab centre at height 0, the lowest tilt's shift at 0 (a 3D translation of the specimen).
    rad = np.deg2rad(tilts)
    axis_frame = rotate_xy(shifts, -tilt_axis_deg) + np.c_[z_centre_px * np.sin(rad), np.zeros(n)]
    ref = int(np.argmin(np.abs(tilts)))
    axis_frame -= np.c_[axis_frame[ref, 0] / np.cos(rad[ref]) * np.cos(rad), np.full(n, axis_frame[ref, 1])]
    result.shifts_px = rotate_xy(axis_frame, tilt_axis_deg)
    return result


__all__ = ["ramp_filter", "reprojections", "specimen_profile", "specimen_slab", "Refinement", "refine_by_reprojection"]
