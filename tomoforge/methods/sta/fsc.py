"""Half-map Fourier shell correlation: the curve, its resolution, and shell bookkeeping.

The FSC itself is ``methods.map_alignment.fourier_shell_correlation`` (shells one Fourier voxel wide,
shell i at i / (n · pixel size) 1/Å); this module adds the masked form, the shell radius of every
voxel (for per-shell filters) and the resolution at a threshold (the first crossing, linear between
shells, as ``fsc_resolution_A``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tomoforge.methods.fourier import as_tensor
from tomoforge.methods.map_alignment import fourier_shell_correlation, fsc_resolution_A

GOLD_STANDARD = 0.143


@dataclass(frozen=True)
class FSCCurve:
    """An FSC: ``frequency`` (1/Å) of shells 0 … n // 2 and the correlation of each."""

    frequency: np.ndarray
    correlation: np.ndarray

    def resolution_A(self, threshold: float = GOLD_STANDARD) -> float:
        """Resolution (Å) of the first crossing of ``threshold`` (the Nyquist resolution if none)."""
        return fsc_resolution_A(self.frequency, self.correlation, threshold)

    def crossing_shell(self, threshold: float = GOLD_STANDARD) -> float:
        """The crossing as a (fractional) shell index."""
        pixel_shell = self.frequency[1]
        return float(1.0 / self.resolution_A(threshold) / pixel_shell)


def half_map_fsc(
    half1: torch.Tensor | np.ndarray,
    half2: torch.Tensor | np.ndarray,
    pixel_size_A: float,
    *,
    mask: torch.Tensor | np.ndarray | None = None,
) -> FSCCurve:
    """FSC between two half maps (n, n, n), each multiplied by ``mask`` first when one is given.

    Parameters
    ----------
    half1, half2 : (n, n, n) arrays
        The half maps, same pixel size.
    pixel_size_A : float
        Voxel size, Å.
    mask : (n, n, n) array, optional
        Soft mask in [0, 1].

    Returns
    -------
    FSCCurve
        Shells 0 … n // 2.
    """
    a = as_tensor(half1, torch.float64)
    b = as_tensor(half2, torch.float64)
    if mask is not None:
        m = as_tensor(mask, torch.float64, a.device)
        a, b = a * m, b * m
    frequency, correlation = fourier_shell_correlation(a, b, pixel_size_A)
    return FSCCurve(frequency, correlation)


def shell_index(n: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Rounded |k| (Fourier voxels) of every voxel of the rfftn grid of an n³ volume (n, n, n // 2 + 1)."""
    k = torch.fft.fftfreq(n, 1.0 / n, device=device, dtype=torch.float64)
    kx = torch.fft.rfftfreq(n, 1.0 / n, device=device, dtype=torch.float64)
    kz, ky, kxx = torch.meshgrid(k, k, kx, indexing="ij")
    return torch.round(torch.sqrt(kz * kz + ky * ky + kxx * kxx)).long()


def apply_shell_filter(volume: torch.Tensor | np.ndarray, per_shell: np.ndarray) -> torch.Tensor:
    """``volume`` (n³) with each Fourier shell multiplied by ``per_shell[shell]`` (0 beyond its end)."""
    v = as_tensor(volume, torch.float64)
    n = v.shape[0]
    shells = shell_index(n, v.device)
    factors = torch.zeros(int(shells.max()) + 1, dtype=torch.float64, device=v.device)
    given = torch.as_tensor(np.asarray(per_shell, dtype=np.float64), device=v.device)
    m = min(len(given), len(factors))
    factors[:m] = given[:m]
    return torch.fft.irfftn(torch.fft.rfftn(v) * factors[shells], s=v.shape).to(torch.float32)


def shell_power(volume: torch.Tensor | np.ndarray) -> np.ndarray:
    """Mean |F|² per Fourier shell 0 … n // 2 of an n³ volume (rfftn, float64)."""
    v = as_tensor(volume, torch.float64)
    n = v.shape[0]
    shells = shell_index(n, v.device).reshape(-1)
    power = (torch.fft.rfftn(v).abs() ** 2).reshape(-1)
    keep = shells <= n // 2
    total = torch.zeros(n // 2 + 1, dtype=torch.float64, device=v.device).index_add_(0, shells[keep], power[keep])
    count = torch.zeros(n // 2 + 1, dtype=torch.float64, device=v.device).index_add_(
        0, shells[keep], torch.ones_like(power[keep])
    )
    return (total / count.clamp(min=1)).cpu().numpy()


__all__ = ["GOLD_STANDARD", "FSCCurve", "apply_shell_filter", "half_map_fsc", "shell_index", "shell_power"]
