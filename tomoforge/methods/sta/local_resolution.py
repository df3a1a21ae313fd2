"""Local resolution: the FSC between two half maps in a soft cubic window around points of a grid.

Every window (``window_px`` wide, a 3D Hann taper, centred every ``step_px`` voxels) of both half maps is
Fourier transformed in one batch; the FSC per window shell (one Fourier voxel of the window, i.e.
1 / (window_px · pixel size) 1/Å wide) comes from one matrix product with the shells' indicator, its first
crossing of the threshold (linear between shells) is the window's resolution, and the coarse grid is
interpolated trilinearly to every voxel. No Python loop over windows or voxels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tomoforge.methods.fourier import as_tensor
from tomoforge.methods.sta.fsc import GOLD_STANDARD, shell_index


def _first_crossing(fsc: torch.Tensor, threshold: float) -> torch.Tensor:
    """(b,) fractional shell of the first fall below ``threshold`` after shell 0 of each row of (b, s); the
    last shell where none."""
    below = fsc[:, 1:] < threshold
    s = fsc.shape[1]
    first = torch.where(
        below.any(1), below.float().argmax(1) + 1, torch.full_like(below[:, 0], s - 1, dtype=torch.long)
    )
    prev = (first - 1).clamp(min=0)
    c0 = fsc.gather(1, prev[:, None])[:, 0]
    c1 = fsc.gather(1, first[:, None])[:, 0]
    step = torch.where((c0 - c1).abs() > 1e-12, (c0 - threshold) / (c0 - c1), torch.ones_like(c0))
    crossing = prev.double() + step.clamp(0, 1)
    return torch.where(below.any(1), crossing, torch.full_like(crossing, float(s - 1)))


def local_resolution(
    half1: torch.Tensor | np.ndarray,
    half2: torch.Tensor | np.ndarray,
    pixel_size_A: float,
    *,
    window_px: int = 16,
    step_px: int = 4,
    threshold: float = GOLD_STANDARD,
    batch: int = 2048,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Resolution (Å) at every voxel of two half maps (n, n, n).

    Parameters
    ----------
    half1, half2 : (n, n, n) arrays
        The half maps.
    pixel_size_A : float
        Voxel size, Å.
    window_px : int
        Side of the (even) window, voxels; its shells are 1 / (window_px · pixel size) 1/Å wide.
    step_px : int
        Spacing of the window centres, voxels.
    threshold : float
        FSC threshold.
    batch : int
        Windows transformed at a time.
    device : torch.device or str, optional
        Where to compute (default: that of ``half1``).

    Returns
    -------
    torch.Tensor
        (n, n, n) float32 resolution in Å (2 · pixel size where the FSC never falls).
    """
    a = as_tensor(half1, torch.float32, device)
    b = as_tensor(half2, torch.float32, a.device)
    n, w = a.shape[0], int(window_px) + int(window_px) % 2
    half = w // 2
    pad = [half] * 6
    stacked = F.pad(torch.stack([a, b])[None], pad, mode="reflect" if half < n else "constant")[0]
    g = int(np.ceil((n - 1) / step_px)) + 1  # evenly spread centres from voxel 0 to n − 1
    centres = torch.round(torch.linspace(0, n - 1, g, device=a.device)).long()
    taper = torch.hann_window(w, periodic=True, device=a.device)
    taper3 = taper[:, None, None] * taper[None, :, None] * taper[None, None, :]
    shells = shell_index(w, a.device).reshape(-1)
    keep = shells <= w // 2
    indicator = F.one_hot(shells[keep], w // 2 + 1).double()  # (voxels kept, shells)
    cz, cy, cx = torch.meshgrid(centres, centres, centres, indexing="ij")
    starts = torch.stack([cz.reshape(-1), cy.reshape(-1), cx.reshape(-1)], 1)  # window start in padded coords
    offsets = torch.arange(w, device=a.device)
    out = torch.empty(len(starts), dtype=torch.float64, device=a.device)
    for lo in range(0, len(starts), batch):
        s = starts[lo : lo + batch]
        iz = (s[:, 0, None] + offsets)[:, :, None, None]
        iy = (s[:, 1, None] + offsets)[:, None, :, None]
        ix = (s[:, 2, None] + offsets)[:, None, None, :]
        windows = stacked[:, iz, iy, ix] * taper3  # (2, B, w, w, w)
        spectra = torch.fft.rfftn(windows.double(), dim=(-3, -2, -1)).reshape(2, len(s), -1)[:, :, keep]
        cross = (spectra[0] * spectra[1].conj()).real @ indicator
        power = torch.sqrt((spectra[0].abs() ** 2 @ indicator) * (spectra[1].abs() ** 2 @ indicator)).clamp(min=1e-300)
        out[lo : lo + batch] = _first_crossing(cross / power, threshold)
    shell = out.reshape(1, 1, g, g, g).clamp(min=1e-3)
    resolution = w * pixel_size_A / shell  # Å per window
    full = F.interpolate(resolution.float(), size=(n, n, n), mode="trilinear", align_corners=True)[0, 0]
    return full.clamp(min=2 * pixel_size_A)


__all__ = ["local_resolution"]
