"""``gaussian_blur`` as torchvision.transforms.functional defines it: a separable Gaussian of
``kernel_size`` taps (sigma default 0.15 k + 0.35), reflect padding, on (..., H, W)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _kernel(size: int, sigma: float, dtype: torch.dtype, device) -> torch.Tensor:
    half = (size - 1) * 0.5
    x = torch.linspace(-half, half, size, dtype=dtype, device=device)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def gaussian_blur(img: torch.Tensor, kernel_size, sigma=None) -> torch.Tensor:
    if isinstance(kernel_size, int):
        kernel_size = [kernel_size, kernel_size]
    if sigma is None:
        sigma = [0.15 * k + 0.35 for k in kernel_size]
    if isinstance(sigma, (int, float)):
        sigma = [float(sigma), float(sigma)]
    shape = img.shape
    dtype = img.dtype if img.is_floating_point() else torch.float32
    x = img.reshape(-1, 1, shape[-2], shape[-1]).to(dtype)
    kx, ky = kernel_size
    x = F.pad(x, [kx // 2, kx // 2, ky // 2, ky // 2], mode="reflect")
    x = F.conv2d(x, _kernel(kx, sigma[0], dtype, x.device).reshape(1, 1, 1, kx))
    x = F.conv2d(x, _kernel(ky, sigma[1], dtype, x.device).reshape(1, 1, ky, 1))
    return x.reshape(shape).to(img.dtype)
