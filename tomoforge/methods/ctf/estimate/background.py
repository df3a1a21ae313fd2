"""Background of an amplitude spectrum: a running mean along the radius over one Thon-ring period.

A mean over exactly one period of CTF² = sin²(χ + α) is ½ whatever the phase, so the running mean
over one period (which depends on the defocus and the frequency) follows the smooth background
plus half the ring envelope, and the data minus it oscillates about zero. The same operator is
applied to the model, so data and model are high-passed alike.
"""

from __future__ import annotations

import math

import torch


def ring_period_k(k_A: torch.Tensor, defocus_A: torch.Tensor, wavelength_A: float, cs_mm: float) -> torch.Tensor:
    """Spatial-frequency period (1/Å) of CTF² at ``k_A`` (1/Å): π / |dχ/dk|,
    dχ/dk = 2π λ Δf k − 2π Cs λ³ k³ (Cs in Å); broadcasts ``defocus_A`` against ``k_A``."""
    cs = cs_mm * 1e7
    slope = 2 * math.pi * wavelength_A * defocus_A * k_A - 2 * math.pi * cs * wavelength_A**3 * k_A**3
    return math.pi / slope.abs().clamp(min=1e-12)


def running_mean(values: torch.Tensor, half_width: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` (..., n) over a window of width 2 h_i centred on i along the last axis: samples
    i − h + 1 … i + h − 1 and half of samples i ± h for integer h (fractional h interpolates the
    cumulative sum linearly); the window is clipped at both ends. ``half_width`` (px)
    broadcasts against ``values`` (e.g. (c, 1, 1, n) against (s, a, n) gives (c, s, a, n))."""
    n = values.shape[-1]
    zero = torch.zeros(values.shape[:-1] + (1,), dtype=values.dtype, device=values.device)
    cum = torch.cat([zero, values.cumsum(-1)], dim=-1)  # cum[j] = sum of values[:j]
    pos = torch.arange(n, dtype=values.dtype, device=values.device)
    h = half_width.to(values.dtype).clamp(min=0.5)
    lo = (pos - h + 0.5).clamp(0, n)
    hi = (pos + h + 0.5).clamp(0, n)
    shape = torch.broadcast_shapes(values.shape, h.shape)
    cum = cum.expand(shape[:-1] + (n + 1,))
    return (_interp(cum, hi) - _interp(cum, lo)) / (hi - lo).clamp(min=1e-6)


def _interp(cum: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of ``cum`` (..., n+1) at fractional indices ``x`` (broadcastable): the indices
    and weights are computed at ``x``'s own shape and only expanded (not copied) to ``cum``'s."""
    i0 = x.floor().long().clamp(0, cum.shape[-1] - 2)
    f = x - i0
    shape = cum.shape[:-1] + (x.shape[-1],)
    return torch.gather(cum, -1, i0.expand(shape)) * (1 - f) + torch.gather(cum, -1, (i0 + 1).expand(shape)) * f


def running_median(values: torch.Tensor, half_width: torch.Tensor, samples: int = 10) -> torch.Tensor:
    """Median of ``values`` (..., n) over [i − h_i, i + h_i] (h rounded, the array mirrored at its ends)
    along the last axis; ``half_width`` (n,) px, the same for every row. A window wider than
    ``samples`` px on each side is sampled at 2 ``samples`` + 1 evenly spaced points (the centre among
    them), so that the cost does not grow with the window.

    A running median follows a monotone background exactly (the median of a monotone run is its
    centre value), also across a knee where a running mean is pulled off, and ignores symmetric
    oscillations about it (the rings)."""
    n = values.shape[-1]
    h = torch.round(half_width.reshape(-1)).long().clamp(min=1, max=n - 1)
    j = torch.arange(-samples, samples + 1, device=values.device)
    small = h[:, None] <= samples
    # a narrow window: every offset −h … h, the others (|j| > h) as many −inf below as +inf above
    offsets = torch.where(
        small, j[None, :].clamp(-h[:, None], h[:, None]), torch.round(j[None, :] * h[:, None] / samples).long()
    )
    idx = torch.arange(n, device=values.device)[:, None] + offsets
    idx = torch.where(idx < 0, -idx, idx)
    idx = torch.where(idx >= n, 2 * (n - 1) - idx, idx).clamp(0, n - 1)
    idx = torch.where(small & (j[None, :] < -h[:, None]), n, idx)  # −inf, appended at n
    idx = torch.where(small & (j[None, :] > h[:, None]), n + 1, idx)  # +inf, at n + 1
    pad = torch.tensor([-math.inf, math.inf], dtype=values.dtype, device=values.device)
    extended = torch.cat([values, pad.expand(values.shape[:-1] + (2,))], dim=-1)
    return extended[..., idx].median(dim=-1).values
