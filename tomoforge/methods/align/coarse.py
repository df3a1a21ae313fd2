"""Coarse alignment: shifts between views by cross-correlation with cosine stretching (IMOD tiltxcorr).

Views are aligned outwards from the lowest tilt. Every reference is made in the untilted frame
(the tilt-axis frame with across-axis distances divided by cos β) and then mapped into the frame of
the view being aligned, so a lower tilt is stretched by cos β_view / cos β_ref across the axis.
The reference is the previous view or, with ``cumulative``, the sum of all views aligned so far
in that direction. Images are band-passed and edge-tapered first.

Shifts are (x, y) pixels: where the specimen centre lands in each view, the lowest tilt at 0
(RELION's XShift/YShift divided by the pixel size).
"""
from __future__ import annotations

import numpy as np
import torch

from tomoforge.methods.align.filters import bandpass, correlation_peak, cross_correlation, edge_taper
from tomoforge.methods.align.transform import rotation_2d, warp_images
from tomoforge.methods.fourier import as_tensor


def stretch_matrix(tilt_axis_deg: float, factor: float) -> np.ndarray:
    """2x2 map scaling distances across the tilt axis by ``factor`` (axis from Y, CCW)."""
    r = rotation_2d(tilt_axis_deg)
    return r @ np.diag([factor, 1.0]) @ r.T


def coarse_align(images, tilts_deg: np.ndarray, tilt_axis_deg: float, low_cut_px: float = 0.0,
                 high_cut_px: float = 2.0, cumulative: bool = False, max_shift_px: float | None = None,
                 taper_px: float | None = None) -> np.ndarray:
    """(n, 2) shifts (pixels) of (n, y, x) ``images`` at nominal ``tilts_deg``.

    ``low_cut_px``: high-pass (features larger than this removed; default a quarter of the image),
    ``high_cut_px``: low-pass period (1/e); ``max_shift_px``: search radius per step (default n/4).
    """
    x = as_tensor(images)
    n, ny, nx = x.shape
    tilts = np.asarray(tilts_deg, dtype=float)
    low = low_cut_px or min(ny, nx) / 4
    taper = edge_taper((ny, nx), taper_px or min(ny, nx) / 10)
    filt = bandpass(x, low, high_cut_px)
    filt = (filt - filt.mean(dim=(-2, -1), keepdim=True)) * taper
    cos = np.cos(np.deg2rad(tilts))
    limit = max_shift_px or min(ny, nx) / 4
    shifts = np.zeros((n, 2))
    ref = int(np.argmin(np.abs(tilts)))
    for direction in (1, -1):
        order = [v for v in np.argsort(direction * tilts, kind="stable") if direction * (tilts[v] - tilts[ref]) > 0]
        prev = ref
        accumulated: torch.Tensor | None = None
        for v in order:
            # untilted frame of the previous view: output(x) = prev(s_prev + M(cos β_prev) x)
            untilted = warp_images(filt[prev], stretch_matrix(tilt_axis_deg, cos[prev]), shifts[prev])
            if cumulative:
                accumulated = untilted if accumulated is None else accumulated + untilted
                untilted = accumulated
            reference = warp_images(untilted, stretch_matrix(tilt_axis_deg, 1.0 / cos[v]), np.zeros(2)) * taper
            shift, _ = correlation_peak(cross_correlation(filt[v], reference), limit)
            shifts[v] = shift
            prev = v
    return shifts


__all__ = ["stretch_matrix", "coarse_align"]
