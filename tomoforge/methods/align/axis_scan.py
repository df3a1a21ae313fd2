"""The tilt axis direction from the data alone, over the whole half-turn (issue 16).

Projection matching finds the tilt axis only near a good starting angle. An acquisition's angle can be far
off: another convention (Tomography 5's ``TiltAxisAngle`` is not the angle from image Y; an axis given near 0°
for one near 90°), and a chain of correlations stretched across the wrong direction drifts by tens of pixels
per step while agreeing with itself. Here the direction is found as the one across which neighbouring views
are best related by cosine stretching: a view at tilt β₂ shows what a view at β₁ shows compressed by
cos β₂ / cos β₁ across the axis and unchanged along it. For each candidate angle, the lower view of every
pair of neighbouring high tilts is stretched into the frame of the higher one and the two are
cross-correlated; the score is the mean normalised correlation peak (within a search disc). The largest
stretches, hence the clearest preference, are between the highest tilts.

Only the line of the axis is found: θ and θ + 180° stretch the same way (they differ by the hand of the
tilts, which the projected positions cannot tell; docs/conventions.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike

from tomoforge.methods.align.filters import cross_correlation, edge_taper
from tomoforge.methods.align.transform import rotation_2d, warp_images
from tomoforge.methods.binning import bin_images
from tomoforge.methods.fourier import as_tensor


@dataclass
class AxisScan:
    """Tilt axis angles scanned (degrees), their scores, the best angle (the equivalent, modulo 180°,
    nearest the given one) and the score of the given angle."""

    angles_deg: np.ndarray
    scores: np.ndarray
    best_deg: float
    best_score: float
    given_score: float
    masked: bool = False  # scored without the views' outliers (``without_outliers``: gold beads)
    outlier_sd: float = 0.0  # the threshold (robust SD) of the outliers set aside (0: none)

    def clear_gain(self) -> float:
        """How much better the best angle scores than the given one, as a fraction of the range of the scores
        (1: the given angle is the worst; near 0 for a flat scan, e.g. sparse beads on two surfaces)."""
        spread = self.best_score - float(self.scores.min())
        return (self.best_score - self.given_score) / spread if spread > 0 else 0.0

    def off_by_deg(self, given_deg: float) -> float:
        """How far the best angle is from ``given_deg``, modulo 180° (degrees, ≥ 0)."""
        return float(abs((self.best_deg - given_deg + 90.0) % 180.0 - 90.0))


def neighbour_pairs(tilts_deg: ArrayLike, min_tilt_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """(lower, higher) view indices of neighbouring tilts on the same side of 0°, both at least
    ``min_tilt_deg`` (all neighbouring pairs when that leaves fewer than 4)."""
    tilts = np.asarray(tilts_deg, dtype=float)
    order = np.argsort(tilts, kind="stable")
    a, b = order[:-1], order[1:]
    same_side = np.sign(tilts[a]) * np.sign(tilts[b]) > 0
    high = same_side & (np.minimum(np.abs(tilts[a]), np.abs(tilts[b])) >= min_tilt_deg)
    keep = high if high.sum() >= 4 else np.ones_like(high)
    a, b = a[keep], b[keep]
    lower = np.where(np.abs(tilts[a]) <= np.abs(tilts[b]), a, b)
    higher = np.where(np.abs(tilts[a]) <= np.abs(tilts[b]), b, a)
    return lower, higher


def without_outliers(x: torch.Tensor, sd: float, grow_px: int) -> torch.Tensor:
    """(n, y, x) band-passed views with every pixel further than ``sd`` robust SD (1.4826 × the median absolute
    deviation) from its view's median, or within ``grow_px`` pixels of one, set to that median (``sd`` ≤ 0:
    unchanged).

    Gold beads are compact, far darker than the specimen and round: they correlate between neighbouring views
    whatever the stretch, so where they hold most of the energy of the views the scan's scores hardly depend on
    the angle (issue 16's series with 40 beads of 10 nm: scores 0.596–0.612 over the half-turn against
    0.31–0.53 without gold, and the best angle 54° off). A bead-free view loses ~5 % of its pixels at 4 SD."""
    if sd <= 0:
        return x
    flat = x.flatten(1)
    med = flat.median(dim=1).values[:, None, None]
    mad = (flat - flat.median(dim=1).values[:, None]).abs().median(dim=1).values[:, None, None] * 1.4826
    far = ((x - med).abs() > sd * mad).to(x.dtype)
    if grow_px > 0:
        far = torch.nn.functional.max_pool2d(far[:, None], 2 * grow_px + 1, 1, grow_px)[:, 0]
    return torch.where(far > 0, med, x)


def scan_tilt_axis(
    filtered: ArrayLike | torch.Tensor,
    tilts_deg: ArrayLike,
    given_deg: float,
    *,
    step_deg: float = 2.0,
    min_tilt_deg: float = 30.0,
    max_size_px: int = 128,
    max_shift_px: float | None = None,
    fit_half_width_deg: float = 10.0,
    outlier_sd: tuple[float, ...] = (4.0, 3.0),
    outlier_grow_px: int = 2,
) -> AxisScan:
    """Score every tilt axis angle over a half-turn by stretched correlation of neighbouring high tilts.

    Parameters
    ----------
    filtered
        (n, y, x) band-passed views (mean removed).
    tilts_deg
        (n,) nominal tilts, degrees.
    given_deg
        The acquisition's tilt axis angle (degrees, from image Y, counter-clockwise): the grid starts there.
    step_deg
        Grid step, degrees.
    min_tilt_deg
        Use pairs of neighbouring views both at least this tilted.
    max_size_px
        Bin the views by 2 until neither side exceeds this.
    max_shift_px
        Radius of the correlation peak search, pixels of ``filtered`` (default a quarter of the image).
    fit_half_width_deg
        The best angle is the centre of a parabola fitted to the scores within this of the best grid angle.
    outlier_sd, outlier_grow_px
        The views are also scored with the pixels further than ``outlier_sd`` robust SD from a view's median, and
        those within ``outlier_grow_px`` (pixels of the binned views) of them, set to the median
        (``without_outliers``: gold beads; each threshold tried; (): not), and the scan whose scores span
        the widest range is kept: beads
        with a specimen flatten the scores (0.597–0.612 on issue 16's series with gold, 0.33–0.47 without
        them), while beads alone are the only signal (the scan without them spans 0.055–0.064 on the
        synthetic beads of tests/methods/align/test_coarse.py, 0.32–0.40 with them). Dense beads widen the robust
        SD itself (80 beads of 10 nm on seed 2 of that series: 1 % of the pixels past 4 SD, the scan at 4 SD as flat
        as the one with the beads, 0.54–0.56, best 35° off): at 3 SD they go (0.27–0.34, best 79.8°).

    Returns
    -------
    AxisScan
        The grid, the scores (mean normalised correlation peak), the best angle and the given angle's score.
    """
    x = as_tensor(filtered)
    factor = 1
    while max(x.shape[-2:]) / factor > max_size_px:
        factor *= 2
    if factor > 1:
        x = bin_images(x, factor)
    ny, nx = (int(v) for v in x.shape[-2:])
    taper = edge_taper((ny, nx), min(ny, nx) / 10, x.device)
    tilts = np.asarray(tilts_deg, dtype=float)
    lower, higher = neighbour_pairs(tilts, min_tilt_deg)
    stretch = np.cos(np.deg2rad(tilts[lower])) / np.cos(np.deg2rad(tilts[higher]))
    radius = (max_shift_px or min(ny, nx) * factor / 4) / factor
    yy, xx = torch.meshgrid(
        torch.arange(ny, device=x.device) - ny // 2, torch.arange(nx, device=x.device) - nx // 2, indexing="ij"
    )
    outside = (yy * yy + xx * xx).float() > radius**2
    grid = given_deg + np.arange(0.0, 180.0 - 1e-9, step_deg)
    # the views as given and without their outliers: the scan whose scores depend more on the angle
    scores = _scores(x - x.mean(dim=(-2, -1), keepdim=True), lower, higher, stretch, grid, taper, outside)
    masked, used_sd = False, 0.0
    for sd in outlier_sd:
        y = without_outliers(x, sd, outlier_grow_px)
        other = _scores(y - y.mean(dim=(-2, -1), keepdim=True), lower, higher, stretch, grid, taper, outside)
        if np.ptp(other) > np.ptp(scores):
            scores, masked, used_sd = other, True, float(sd)
    best = int(np.argmax(scores))
    # the peak is broad and a little rough: its centre from a parabola fitted over ±``fit_half_width_deg``
    offsets = (np.arange(len(grid)) - best + len(grid) // 2) % len(grid) - len(grid) // 2
    near = np.abs(offsets) * step_deg <= fit_half_width_deg
    c2, c1, _ = np.polyfit(offsets[near] * step_deg, scores[near], 2)
    centre = -c1 / (2 * c2) if c2 < 0 else 0.0
    angle = grid[best] + float(np.clip(centre, -fit_half_width_deg, fit_half_width_deg))
    angle = given_deg + (angle - given_deg + 90.0) % 180.0 - 90.0  # the equivalent nearest the given angle
    return AxisScan(grid, scores, float(angle), float(scores[best]), float(scores[0]), masked, used_sd)


def _scores(
    x: torch.Tensor,
    lower: np.ndarray,
    higher: np.ndarray,
    stretch: np.ndarray,
    grid: np.ndarray,
    taper: torch.Tensor,
    outside: torch.Tensor,
) -> np.ndarray:
    """(angles,) mean normalised correlation peak (outside the disc masked) of the ``higher`` views of (n, y, x)
    ``x`` with the ``lower`` ones stretched by ``stretch`` across each axis angle of ``grid`` (degrees)."""
    targets = x[torch.as_tensor(higher)] * taper
    target_norm = targets.norm(dim=(-2, -1))
    scores = np.empty(len(grid))
    for k, angle in enumerate(grid):
        r = rotation_2d(float(angle))
        mats = r[None] @ (np.eye(2)[None] * np.c_[stretch, np.ones_like(stretch)][:, :, None]) @ r.T[None]
        refs = warp_images(x[torch.as_tensor(lower)], mats, np.zeros((len(lower), 2))) * taper
        cc = cross_correlation(targets, refs).masked_fill(outside, -torch.inf)
        peak = cc.flatten(1).max(dim=1).values / (target_norm * refs.norm(dim=(-2, -1))).clamp(min=1e-12)
        scores[k] = float(peak.mean())
    return scores


__all__ = ["AxisScan", "neighbour_pairs", "scan_tilt_axis", "without_outliers"]
