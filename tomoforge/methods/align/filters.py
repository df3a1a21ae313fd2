"""Image helpers shared by the alignment methods: band-pass, edge taper, correlation, peaks.

Images are (..., y, x) torch tensors (numpy accepted); positions are (x, y) in pixels from the
image centre (index n // 2) unless a name says otherwise.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike

from tomoforge.methods.fourier import as_tensor, frequency_grid_2d


def bandpass_filter(
    shape: tuple[int, ...], low_cut_px: float, high_cut_px: float, *, device: torch.device | str | None = None
) -> torch.Tensor:
    """rfft-grid gain: Gaussian high-pass removing features larger than ``low_cut_px`` (period, px;
    0 = none) times a Gaussian low-pass with its 1/e point at period ``high_cut_px``."""
    ky, kx = frequency_grid_2d((shape[-2], shape[-1]), 1.0, True, device)
    k2 = ky * ky + kx * kx
    gain = torch.ones_like(k2)
    if high_cut_px > 0:
        gain = gain * torch.exp(-k2 * high_cut_px**2)
    if low_cut_px > 0:
        gain = gain * (1 - torch.exp(-k2 * low_cut_px**2))
    return gain


def bandpass(images: ArrayLike | torch.Tensor, low_cut_px: float, high_cut_px: float) -> torch.Tensor:
    """(..., y, x) images band-passed (see ``bandpass_filter``; periods in pixels), mean removed, on their device."""
    x = as_tensor(images)
    spec = torch.fft.rfft2(x) * bandpass_filter(tuple(x.shape[-2:]), low_cut_px, high_cut_px, device=x.device)
    spec[..., 0, 0] = 0
    return torch.fft.irfft2(spec, s=tuple(x.shape[-2:]))


def edge_taper(shape: tuple[int, int], width_px: float, device: torch.device | str | None = None) -> torch.Tensor:
    """(y, x) weights rising as a cosine from 0 at the border to 1 at ``width_px`` inside."""

    def ramp(n: int) -> torch.Tensor:
        d = torch.minimum(torch.arange(n, device=device), torch.arange(n, device=device).flip(0)).float()
        return torch.where(d < width_px, 0.5 - 0.5 * torch.cos(torch.pi * d / max(width_px, 1.0)), torch.ones_like(d))

    return ramp(shape[0])[:, None] * ramp(shape[1])[None, :]


def cross_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Circular cross-correlation, centred: peak at index n // 2 + d where a(x) ≈ b(x − d)."""
    spec = torch.fft.rfft2(a) * torch.conj(torch.fft.rfft2(b))
    cc = torch.fft.irfft2(spec, s=tuple(a.shape[-2:]))
    return torch.fft.fftshift(cc, dim=(-2, -1))


def subpixel_peaks(score: np.ndarray, iy: np.ndarray, ix: np.ndarray, *, half: int = 2) -> np.ndarray:
    """(k, 2) (y, x) indices refined by a least-squares quadratic over the (2·half + 1)² window
    about each integer peak (offset clipped to ±1 px)."""
    ny, nx = score.shape
    iy = np.clip(np.asarray(iy, dtype=int), half, ny - 1 - half)
    ix = np.clip(np.asarray(ix, dtype=int), half, nx - 1 - half)
    oy, ox = np.mgrid[-half : half + 1, -half : half + 1]
    oy, ox = oy.ravel().astype(float), ox.ravel().astype(float)
    design = np.stack([np.ones_like(ox), ox, oy, ox * ox, ox * oy, oy * oy], axis=1)
    patches = score[iy[:, None] + oy.astype(int)[None], ix[:, None] + ox.astype(int)[None]]
    a = patches @ np.linalg.pinv(design).T  # (k, 6)
    b, c, d, e, f = a[:, 1], a[:, 2], a[:, 3], a[:, 4], a[:, 5]
    det = 4 * d * f - e * e
    with np.errstate(divide="ignore", invalid="ignore"):
        dx = np.where(np.abs(det) > 1e-12, (-2 * f * b + e * c) / det, 0.0)
        dy = np.where(np.abs(det) > 1e-12, (-2 * d * c + e * b) / det, 0.0)
    bad = ~np.isfinite(dx) | ~np.isfinite(dy) | (det <= 0)
    dx, dy = np.where(bad, 0.0, np.clip(dx, -1, 1)), np.where(bad, 0.0, np.clip(dy, -1, 1))
    return np.stack([iy + dy, ix + dx], axis=-1)


def correlation_peak(
    cc: torch.Tensor, *, max_shift_px: float | None = None, centre_px: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """(x, y) shift (pixels) of the highest peak of a centred correlation map, and its height.

    ``max_shift_px`` limits the search to a disc about ``centre_px`` (x, y; default 0).
    """
    c = cc.detach().cpu().numpy().astype(np.float64)
    ny, nx = c.shape
    if max_shift_px is not None:
        cx, cy = (0.0, 0.0) if centre_px is None else (float(centre_px[0]), float(centre_px[1]))
        yy, xx = np.ogrid[:ny, :nx]
        c = np.where((yy - ny // 2 - cy) ** 2 + (xx - nx // 2 - cx) ** 2 <= max_shift_px**2, c, -np.inf)
    iy, ix = np.unravel_index(int(np.argmax(c)), c.shape)
    c = np.where(np.isfinite(c), c, np.nanmin(cc.cpu().numpy()))
    yx = subpixel_peaks(c, np.array([iy]), np.array([ix]), half=1)[0]
    return np.array([yx[1] - nx // 2, yx[0] - ny // 2]), float(c[iy, ix])


def centred_coordinates(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(y, x) index offsets from the centre n // 2 (broadcastable column and row)."""
    return (np.arange(shape[0]) - shape[0] // 2)[:, None], (np.arange(shape[1]) - shape[1] // 2)[None, :]


def rotate_xy(points: np.ndarray, angle_deg: float | np.ndarray) -> np.ndarray:
    """(…, 2) (x, y) points rotated counter-clockwise by ``angle_deg`` (per leading index if an array)."""
    a = np.deg2rad(np.asarray(angle_deg, dtype=float))
    c, s = np.cos(a), np.sin(a)
    x, y = points[..., 0], points[..., 1]
    if np.ndim(a):
        c, s = c.reshape(c.shape + (1,) * (x.ndim - c.ndim)), s.reshape(s.shape + (1,) * (x.ndim - s.ndim))
    return np.stack([c * x - s * y, s * x + c * y], axis=-1)


__all__ = [
    "bandpass_filter",
    "bandpass",
    "edge_taper",
    "cross_correlation",
    "subpixel_peaks",
    "correlation_peak",
    "centred_coordinates",
    "rotate_xy",
]
