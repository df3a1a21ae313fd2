"""Resampling images by affine maps of centred pixel coordinates, and the aligned (interpolated) stack.

A map (M, o) makes output(x) = input(o + M · x), x = (x, y) in pixels from the output centre
(index n // 2), o in pixels from the input centre. Bilinear interpolation, zero outside.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tomoforge.methods.fourier import as_tensor


def warp_images(
    images, matrices: np.ndarray, offsets_px: np.ndarray, out_shape: tuple[int, int] | None = None, scale: float = 1.0
) -> torch.Tensor:
    """(n, y, x) images resampled: output(x) = input(offset + M · scale · x) per image."""
    x = as_tensor(images)
    squeeze = x.ndim == 2
    x = x[None] if squeeze else x
    n, ny, nx = x.shape
    oy, ox = out_shape or (ny, nx)
    m = torch.as_tensor(np.asarray(matrices, dtype=float).reshape(-1, 2, 2) * scale, dtype=torch.float32)
    o = torch.as_tensor(np.asarray(offsets_px, dtype=float).reshape(-1, 2), dtype=torch.float32)
    m, o = m.expand(n, 2, 2), o.expand(n, 2)
    gy = torch.arange(oy, dtype=torch.float32) - oy // 2
    gx = torch.arange(ox, dtype=torch.float32) - ox // 2
    yy, xx = torch.meshgrid(gy, gx, indexing="ij")
    pts = torch.stack([xx, yy], dim=-1).reshape(1, -1, 2)  # (1, P, 2) as (x, y)
    src = pts @ m.transpose(1, 2) + o[:, None, :]  # (n, P, 2)
    grid = torch.stack([(src[..., 0] + nx // 2) * 2 / (nx - 1) - 1, (src[..., 1] + ny // 2) * 2 / (ny - 1) - 1], -1)
    out = F.grid_sample(
        x[:, None], grid.reshape(n, oy, ox, 2), mode="bilinear", padding_mode="zeros", align_corners=True
    )[:, 0]
    return out[0] if squeeze else out


def rotation_2d(angle_deg: float | np.ndarray) -> np.ndarray:
    """(…, 2, 2) counter-clockwise rotation of (x, y) vectors."""
    a = np.deg2rad(np.asarray(angle_deg, dtype=float))
    c, s = np.cos(a), np.sin(a)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def aligned_stack(
    images, z_rot_deg: np.ndarray, shifts_px: np.ndarray, binning: float = 1.0, magnification: np.ndarray | None = None
) -> torch.Tensor:
    """The interpolated (aligned) tilt series: shifts removed and each view rotated so its tilt axis
    is vertical (IMOD newstack with the .xf), optionally binned; output pixel = ``binning`` px."""
    x = as_tensor(images)
    n, ny, nx = x.shape
    mats = rotation_2d(np.asarray(z_rot_deg, dtype=float))
    if magnification is not None:
        mats = mats * np.asarray(magnification, dtype=float)[:, None, None]
    out_shape = (int(round(ny / binning)), int(round(nx / binning)))
    if binning > 1:  # low-pass before sampling every ``binning`` pixels
        from tomoforge.methods.align.filters import bandpass

        x = bandpass(x, 0.0, binning / 2) + x.mean(dim=(-2, -1), keepdim=True)
    return warp_images(x, mats, shifts_px, out_shape, scale=binning)


__all__ = ["warp_images", "rotation_2d", "aligned_stack"]
