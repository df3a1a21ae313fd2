"""Resampling images by affine maps of centred pixel coordinates, and the aligned (interpolated) stack.

A map (M, o) makes output(x) = input(o + M · x), x = (x, y) in pixels from the output centre
(index n // 2), o in pixels from the input centre. Bilinear interpolation, zero outside.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike

from tomoforge.methods.align.filters import bandpass
from tomoforge.methods.fourier import as_tensor


def warp_images(
    images: ArrayLike | torch.Tensor,
    matrices: ArrayLike,
    offsets_px: ArrayLike,
    *,
    out_shape: tuple[int, int] | None = None,
    scale: float = 1.0,
) -> torch.Tensor:
    """Images resampled by affine maps: output(x) = input(offset + M · scale · x) per image.

    Parameters
    ----------
    images
        (n, y, x) or (y, x) images.
    matrices
        (n, 2, 2) or (2, 2) maps M of (x, y) pixel coordinates (one for all images, or one each).
    offsets_px
        (n, 2) or (2,) offsets o, (x, y) pixels from the input centre (index n // 2).
    out_shape
        (y, x) of the output (default the input's); x is measured from its centre.
    scale
        Factor on the output coordinates (e.g. a binning).

    Returns
    -------
    torch.Tensor
        (n, oy, ox) (or (oy, ox) for one image) float32, bilinear, zero outside, on the input's device.
    """
    x = as_tensor(images)
    squeeze = x.ndim == 2
    x = x[None] if squeeze else x
    n, ny, nx = x.shape
    oy, ox = out_shape or (ny, nx)
    dev = x.device
    m = torch.as_tensor(np.asarray(matrices, dtype=float).reshape(-1, 2, 2) * scale, dtype=torch.float32, device=dev)
    o = torch.as_tensor(np.asarray(offsets_px, dtype=float).reshape(-1, 2), dtype=torch.float32, device=dev)
    m, o = m.expand(n, 2, 2), o.expand(n, 2)
    gy = torch.arange(oy, dtype=torch.float32, device=dev) - oy // 2
    gx = torch.arange(ox, dtype=torch.float32, device=dev) - ox // 2
    yy, xx = torch.meshgrid(gy, gx, indexing="ij")
    pts = torch.stack([xx, yy], dim=-1).reshape(1, -1, 2)  # (1, P, 2) as (x, y)
    src = pts @ m.transpose(1, 2) + o[:, None, :]  # (n, P, 2)
    grid = torch.stack([(src[..., 0] + nx // 2) * 2 / (nx - 1) - 1, (src[..., 1] + ny // 2) * 2 / (ny - 1) - 1], -1)
    out = F.grid_sample(
        x[:, None], grid.reshape(n, oy, ox, 2), mode="bilinear", padding_mode="zeros", align_corners=True
    )[:, 0]
    return out[0] if squeeze else out


def rotation_2d(angle_deg: float | ArrayLike) -> np.ndarray:
    """(…, 2, 2) counter-clockwise rotation of (x, y) vectors by ``angle_deg`` (degrees)."""
    a = np.deg2rad(np.asarray(angle_deg, dtype=float))
    c, s = np.cos(a), np.sin(a)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def aligned_stack(
    images: ArrayLike | torch.Tensor,
    z_rot_deg: ArrayLike,
    shifts_px: ArrayLike,
    *,
    binning: float = 1.0,
    magnification: ArrayLike | None = None,
) -> torch.Tensor:
    """The interpolated (aligned) tilt series (IMOD newstack with the .xf): shifts removed and each view
    rotated so that its tilt axis is vertical, optionally binned.

    Parameters
    ----------
    images
        (n, y, x) views.
    z_rot_deg
        (n,) tilt axis angle of each view, degrees from image Y, counter-clockwise.
    shifts_px
        (n, 2) (x, y) shifts, pixels: where the specimen centre lands in each view.
    binning
        Output pixel = ``binning`` input pixels (low-passed first when > 1).
    magnification
        (n,) relative magnification of each view (default 1).

    Returns
    -------
    torch.Tensor
        (n, round(y / binning), round(x / binning)) aligned views, on the input's device.
    """
    x = as_tensor(images)
    n, ny, nx = x.shape
    mats = rotation_2d(np.asarray(z_rot_deg, dtype=float))
    if magnification is not None:
        mats = mats * np.asarray(magnification, dtype=float)[:, None, None]
    out_shape = (int(round(ny / binning)), int(round(nx / binning)))
    if binning > 1:  # low-pass before sampling every ``binning`` pixels
        x = bandpass(x, 0.0, binning / 2) + x.mean(dim=(-2, -1), keepdim=True)
    return warp_images(x, mats, shifts_px, out_shape=out_shape, scale=binning)


__all__ = ["warp_images", "rotation_2d", "aligned_stack"]
