"""X-ray eraser: hot pixels and X-ray hits found as outliers against their neighbourhood, replaced.

For each image, iterated until the set of outliers stops changing (at most ``iterations``):

1. background b = local mean of the pixels not yet flagged, in a (2·w+1)² box (w = background_px);
2. noise σ = √(π/2) · local mean |x − b| over the unflagged pixels of a 3× wider box (in the first
   pass, the robust global σ = 1.4826 · MAD of the residual, so that clustered hits cannot mask each other);
3. a peak is a pixel whose residual exceeds ``threshold_sd``·σ (bright; ``polarity="both"`` also dark);
4. its neighbours within ``max_radius_px`` whose residual exceeds ``grow_sd``·σ join it.

Flagged pixels are replaced by the background b computed without them. Everything is a box filter
(separable cumulative sums), so it runs on stacks at once, on CPU or GPU (as in IMOD's ccderaser, the peak and
grow criteria are in standard deviations of the local noise).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from tomoforge.methods.fourier import as_tensor

SIGMA_BOX = 3  # the noise box is this many times wider than the background box
SQRT_HALF_PI = float(np.sqrt(np.pi / 2))


@dataclass
class XrayResult:
    """Erased images (n, y, x), the outlier mask, and per image: pixels replaced and hits (blobs)."""

    images: torch.Tensor
    mask: torch.Tensor
    pixels_replaced: list[int]
    hits: list[int]


def _box_sum_1d(x: torch.Tensor, half: int, dim: int) -> torch.Tensor:
    """Sum over a window of 2·half+1 along ``dim`` (zero outside), by a cumulative sum: O(1) per pixel."""
    n = x.shape[dim]
    pad = [0, 0] * (x.ndim - 1 - dim % x.ndim) + [half + 1, half]
    c = torch.cumsum(F.pad(x, pad), dim=dim)
    return c.narrow(dim, 2 * half + 1, n) - c.narrow(dim, 0, n)


def _box_mean(x: torch.Tensor, weight: torch.Tensor, half: int) -> torch.Tensor:
    """Weighted mean of ``x`` in (2·half+1)² boxes (edges: only the pixels inside the image), by separable
    cumulative sums, so the cost does not grow with the box; each image's mean is taken out first so that
    float32 sums stay exact to ~1e-6 of the signal."""
    offset = x.mean(dim=(-2, -1), keepdim=True)
    num, den = (x - offset) * weight, weight
    for dim in (-2, -1):
        num, den = _box_sum_1d(num, half, dim), _box_sum_1d(den, half, dim)
    return num / den.clamp(min=1e-6) + offset


def _disk_dilate(mask: torch.Tensor, radius: float) -> torch.Tensor:
    """``mask`` (n, y, x) dilated by a disk of ``radius`` pixels."""
    r = int(np.floor(radius))
    if r < 1:
        return mask
    yy, xx = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
    disk = ((yy * yy + xx * xx) <= radius * radius).to(torch.float32)[None, None].to(mask.device)
    return F.conv2d(mask[:, None].to(torch.float32), disk, padding=r)[:, 0] > 0.5


def find_outliers(images, threshold_sd: float = 4.2, max_radius_px: float = 2.5, grow_sd: float = 3.0,
                  background_px: int = 6, polarity: Literal["bright", "both"] = "bright",
                  iterations: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask of outliers, background without them) for images (n, y, x) or (y, x)."""
    x = as_tensor(images)
    single = x.ndim == 2
    if single:
        x = x[None]
    if threshold_sd <= 0 or grow_sd <= 0:
        raise ValueError("threshold_sd and grow_sd must be > 0")
    half = max(int(background_px), int(np.ceil(max_radius_px)) + 2)
    valid = torch.ones_like(x)
    mask = torch.zeros_like(x, dtype=torch.bool)
    for iteration in range(iterations):
        background = _box_mean(x, valid, half)
        residual = x - background
        if iteration == 0:  # robust global σ (MAD) first, so that clustered hits cannot hide each other
            flat = residual.flatten(1)
            mad = (flat - flat.median(dim=1, keepdim=True).values).abs().median(dim=1).values
            sigma = (1.4826 * mad).clamp(min=1e-12)[:, None, None].expand_as(residual)
        else:
            # mean |residual| (× √(π/2) = σ for Gaussian noise) over a wider box: less swayed by edges
            sigma = (_box_mean(residual.abs(), valid, SIGMA_BOX * half) * SQRT_HALF_PI).clamp(min=1e-12)
        score = residual / sigma if polarity == "bright" else residual.abs() / sigma
        peaks = score > threshold_sd
        new = peaks | (_disk_dilate(peaks, max_radius_px) & (score > grow_sd))
        if iteration > 0 and torch.equal(new, mask):
            break
        mask = new
        valid = (~mask).to(x.dtype)
    background = _box_mean(x, (~mask).to(x.dtype), half)
    return (mask[0], background[0]) if single else (mask, background)


def erase_xrays(images, threshold_sd: float = 4.2, max_radius_px: float = 2.5, grow_sd: float = 3.0,
                background_px: int = 6, polarity: Literal["bright", "both"] = "bright") -> XrayResult:
    """Replace hot pixels and X-ray hits of images (n, y, x) by their local background."""
    from scipy import ndimage

    x = as_tensor(images)
    if x.ndim == 2:
        x = x[None]
    mask, background = find_outliers(x, threshold_sd, max_radius_px, grow_sd, background_px, polarity)
    out = torch.where(mask, background, x)
    counts = mask.flatten(1).sum(dim=1).tolist()
    hits = [int(ndimage.label(m)[1]) for m in mask.cpu().numpy()]
    return XrayResult(images=out, mask=mask, pixels_replaced=[int(c) for c in counts], hits=hits)
