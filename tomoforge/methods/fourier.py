"""Frequency grids and Fourier-space resampling helpers (torch; numpy accepted at the edge).

Frequencies are in cycles/Å when a pixel size is given, cycles/pixel otherwise. Arrays follow
torch.fft conventions (DC at index 0, not centred); ``rfft`` grids have last dim n // 2 + 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch


def as_tensor(
    x: torch.Tensor | npt.ArrayLike, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """``x`` as a torch tensor (no copy when it already is one of that dtype/device)."""
    if isinstance(x, torch.Tensor):
        return x.to(dtype=dtype, device=device if device is not None else x.device)
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)


def fast_fft_size(n: int, *, even: bool = False) -> int:
    """The smallest length ≥ ``n`` whose only prime factors are 2, 3 and 5 (a fast FFT length).

    Parameters
    ----------
    n : int
        The least length (samples, ≥ 1).
    even : bool
        Only even lengths (e.g. for an rfft grid whose Nyquist frequency is sampled).

    Returns
    -------
    int
        The length (samples): 5-smooth, ≥ ``n``, and even when ``even`` is set.
    """
    if n < 1:
        raise ValueError(f"an FFT length is at least 1, got {n}")
    step = 2 if even else 1
    m = n + n % 2 if even else n
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += step


def frequency_grid_2d(
    shape: tuple[int, int], pixel_size_A: float = 1.0, rfft: bool = True, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ky, kx) frequency grids in cycles/Å for an image of ``shape`` (y, x)."""
    ny, nx = shape
    ky = torch.fft.fftfreq(ny, d=pixel_size_A, device=device)
    kx = (torch.fft.rfftfreq if rfft else torch.fft.fftfreq)(nx, d=pixel_size_A, device=device)
    gy, gx = torch.meshgrid(ky, kx, indexing="ij")
    return gy, gx


def frequency_grid_3d(
    shape: tuple[int, int, int], pixel_size_A: float = 1.0, rfft: bool = True, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(kz, ky, kx) frequency grids in cycles/Å for a volume of ``shape`` (z, y, x)."""
    nz, ny, nx = shape
    kz = torch.fft.fftfreq(nz, d=pixel_size_A, device=device)
    ky = torch.fft.fftfreq(ny, d=pixel_size_A, device=device)
    kx = (torch.fft.rfftfreq if rfft else torch.fft.fftfreq)(nx, d=pixel_size_A, device=device)
    gz, gy, gx = torch.meshgrid(kz, ky, kx, indexing="ij")
    return gz, gy, gx


def spatial_frequency_2d(
    shape: tuple[int, int], pixel_size_A: float = 1.0, rfft: bool = True, device: torch.device | str | None = None
) -> torch.Tensor:
    """|k| in cycles/Å on the 2D (r)fft grid of ``shape``."""
    ky, kx = frequency_grid_2d(shape, pixel_size_A, rfft, device)
    return torch.sqrt(ky * ky + kx * kx)


def fourier_shift_2d(images: torch.Tensor, shift_yx_px: torch.Tensor | tuple[float, float]) -> torch.Tensor:
    """Images (..., y, x) translated by ``shift_yx_px`` (..., 2) pixels (periodic, sub-pixel exact)."""
    ny, nx = images.shape[-2:]
    ky, kx = frequency_grid_2d((ny, nx), 1.0, True, images.device)
    s = as_tensor(shift_yx_px, torch.float32, images.device)
    phase = -2 * torch.pi * (ky * s[..., 0, None, None] + kx * s[..., 1, None, None])
    spectrum = torch.fft.rfft2(images.to(torch.float32)) * torch.polar(torch.ones_like(phase), phase)
    return torch.fft.irfft2(spectrum, s=(ny, nx))


def phase_ramp_2d(
    shape: tuple[int, int], shift_yx_px: torch.Tensor | tuple[float, float], device: torch.device | str | None = None
) -> torch.Tensor:
    """Complex rfft-grid factor exp(-2πi k·s) that translates an image by ``shift_yx_px`` pixels."""
    ky, kx = frequency_grid_2d(shape, 1.0, True, device)
    phase = -2 * torch.pi * (ky * float(shift_yx_px[0]) + kx * float(shift_yx_px[1]))
    return torch.polar(torch.ones_like(phase), phase)


def phase_ramp_3d(
    shape: tuple[int, int, int],
    shift_zyx_px: torch.Tensor | tuple[float, float, float],
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Complex rfftn-grid factor exp(-2πi k·s) that translates a volume by ``shift_zyx_px`` voxels."""
    kz, ky, kx = frequency_grid_3d(shape, 1.0, True, device)
    phase = -2 * torch.pi * (kz * float(shift_zyx_px[0]) + ky * float(shift_zyx_px[1]) + kx * float(shift_zyx_px[2]))
    return torch.polar(torch.ones_like(phase), phase)


def fourier_crop(x: torch.Tensor, new_shape: tuple[int, ...]) -> torch.Tensor:
    """Resample the last len(new_shape) dims of real ``x`` to ``new_shape`` by cropping (or zero-padding)
    its centred full FFT; values keep their scale (a binned image has the same mean)."""
    nd = len(new_shape)
    dims = tuple(range(-nd, 0))
    old = x.shape[-nd:]
    spec = torch.fft.fftshift(torch.fft.fftn(x.to(torch.float32), dim=dims), dim=dims)
    out = torch.zeros(x.shape[:-nd] + tuple(new_shape), dtype=spec.dtype, device=x.device)
    src: list[slice] = []
    dst: list[slice] = []
    for o, n in zip(old, new_shape):
        m = min(o, n)
        src.append(slice(o // 2 - m // 2, o // 2 - m // 2 + m))
        dst.append(slice(n // 2 - m // 2, n // 2 - m // 2 + m))
    into: tuple[Any, ...] = (Ellipsis, *dst)
    out[into] = spec[(Ellipsis, *src)]
    scale = float(np.prod(new_shape)) / float(np.prod(old))
    return torch.fft.ifftn(torch.fft.ifftshift(out, dim=dims), dim=dims).real * scale


def bin_fourier(x: torch.Tensor, factor: float, ndim: int = 2) -> torch.Tensor:
    """Bin the last ``ndim`` dims by ``factor`` (pixel size × factor) by Fourier cropping."""
    new_shape = tuple(int(round(n / factor)) for n in x.shape[-ndim:])
    return fourier_crop(x, new_shape)


def pad_to(x: torch.Tensor, shape: tuple[int, ...], value: float = 0.0) -> torch.Tensor:
    """``x`` centred in an array of ``shape`` (last dims), filled with ``value`` (centre = n // 2 kept)."""
    nd = len(shape)
    pads = []
    for o, n in zip(reversed(x.shape[-nd:]), reversed(shape)):
        before = n // 2 - o // 2
        pads += [before, n - o - before]
    return torch.nn.functional.pad(x, pads, value=value)
