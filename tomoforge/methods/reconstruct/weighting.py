"""Weighting of the lines before back-projection, and their band-limited upsampling.

- ``ramp_filter``: the ramp |f| of filtered back-projection as the DFT of the band-limited spatial
  Ram-Lak kernel (Kak & Slaney 1988, eq. 3.61), which gets the zero-frequency term right on a finite line.
- ``radial_filter``: IMOD ``tilt`` RADIAL: the ramp up to ``cutoff`` (cycles/pixel), a Gaussian fall-off
  of standard deviation ``falloff`` beyond it (IMOD's FalloffIsTrueSigma 1).
- ``sirt_like_factor``: IMOD's FakeSIRTiterations (Zeng 2012): the ramp times 1 − (1 − f₀/|f|)ᵏ, what k
  iterations of SIRT (Landweber) recover at frequency f, f₀ ≤ |f|; frequencies below f₀ get the ramp.
  f₀ = λ cos β / (Φ T) is what one iteration of this package's SIRT recovers (relaxation λ, view tilt β,
  angular range Φ in radians, thickness T in voxels): the symbol of its C·Aᵀ·R·A is f₀/|f|.
Frequencies are in cycles per image pixel.
"""

from __future__ import annotations

import numpy as np
import torch

from tomoforge.methods.fourier import fast_fft_size
from tomoforge.methods.reconstruct import settings as defaults


def padded_length(n: int) -> int:
    """A fast FFT length ≥ 2 n, so that the filter's tail does not wrap round the line."""
    return fast_fft_size(2 * n)


def ramp_filter(n_pad: int) -> np.ndarray:
    """(n_pad // 2 + 1,) real rfft-grid ramp of a line of ``n_pad`` samples, band limit 0.5 cycles/px."""
    n = np.arange(n_pad)
    n = np.where(n > n_pad // 2, n - n_pad, n)
    kernel = np.zeros(n_pad)
    kernel[n == 0] = 0.25
    odd = (n % 2) != 0
    kernel[odd] = -1.0 / (np.pi * n[odd]) ** 2
    return np.fft.rfft(kernel).real


def gaussian_falloff(freq: np.ndarray, cutoff: float, falloff: float) -> np.ndarray:
    """1 up to ``cutoff`` (cycles/px), exp(−(f − cutoff)² / 2σ²) beyond (σ = ``falloff``; 0: a hard cut)."""
    f = np.abs(freq)
    beyond = np.maximum(f - cutoff, 0.0)
    if falloff <= 0:
        return (f <= cutoff).astype(np.float64)
    return np.exp(-(beyond**2) / (2.0 * falloff**2))


def radial_filter(
    n_pad: int, *, cutoff: float = defaults.RADIAL_CUTOFF, falloff: float = defaults.RADIAL_FALLOFF
) -> np.ndarray:
    """IMOD RADIAL weighting on the rfft grid of ``n_pad`` samples: ramp × Gaussian fall-off beyond ``cutoff``."""
    if not 0 < cutoff <= 0.5:
        raise ValueError(f"radial cut-off must be in (0, 0.5] cycles/pixel, got {cutoff}")
    if falloff < 0:
        raise ValueError(f"radial fall-off must be ≥ 0 cycles/pixel, got {falloff}")
    return ramp_filter(n_pad) * gaussian_falloff(np.fft.rfftfreq(n_pad), cutoff, falloff)


def sirt_like_factor(freq: np.ndarray, iterations: int, f0: float) -> np.ndarray:
    """1 − (1 − min(1, f₀ / |f|))ᵏ: the fraction of frequency f that k SIRT iterations recover."""
    f = np.abs(np.asarray(freq, dtype=np.float64))
    step = np.minimum(1.0, f0 / np.maximum(f, 1e-12))
    return 1.0 - (1.0 - step) ** int(iterations)


def wbp_filters(
    n_pad: int,
    tilt_deg: np.ndarray,
    weights_rad: np.ndarray,
    cutoff: float,
    falloff: float,
    sirt_like_iterations: int = 0,
    thickness_px: float = 1.0,
    relaxation: float = 1.0,
) -> np.ndarray:
    """(n_views, n_pad // 2 + 1) filter of each view: angular weight × radial filter (× SIRT-like factor)."""
    base = radial_filter(n_pad, cutoff=cutoff, falloff=falloff)
    out = np.asarray(weights_rad, dtype=np.float64)[:, None] * base[None, :]
    if sirt_like_iterations > 0:
        freq = np.fft.rfftfreq(n_pad)
        span = float(np.sum(weights_rad))
        for i, beta in enumerate(np.deg2rad(np.asarray(tilt_deg, dtype=np.float64))):
            f0 = relaxation * np.cos(beta) / (span * thickness_px)
            out[i] *= sirt_like_factor(freq, sirt_like_iterations, f0)
    return out


def filter_lines(lines: torch.Tensor, filters: torch.Tensor | None, oversampling: int, n_pad: int) -> torch.Tensor:
    """Filter the lines (n_views, rows, n) along their last dim with ``filters`` (n_views, n_pad // 2 + 1; None:
    no filter) and upsample them by ``oversampling`` (band-limited: zero-padded spectrum); returns
    (n_views, rows, n × oversampling)."""
    n = lines.shape[-1]
    if filters is None and oversampling == 1:
        return lines
    spec = torch.fft.rfft(lines, n=n_pad, dim=-1)
    m = n_pad * oversampling
    full = (
        spec
        if oversampling == 1
        else torch.zeros(spec.shape[:-1] + (m // 2 + 1,), dtype=spec.dtype, device=spec.device)
    )
    head = full[..., : spec.shape[-1]]
    if filters is not None:
        torch.mul(spec, filters[:, None, :].to(spec.real.dtype), out=head)  # in place when oversampling is 1
    elif oversampling > 1:
        head.copy_(spec)
    if oversampling == 1:
        return torch.fft.irfft(full, n=n_pad, dim=-1)[..., :n]
    if n_pad % 2 == 0:
        head[..., -1] *= 0.5  # the Nyquist term splits between ±f when upsampled
    return torch.fft.irfft(full, n=m, dim=-1)[..., : n * oversampling] * oversampling


__all__ = [
    "padded_length",
    "ramp_filter",
    "gaussian_falloff",
    "radial_filter",
    "sirt_like_factor",
    "wbp_filters",
    "filter_lines",
]
