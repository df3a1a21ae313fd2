"""Rotate and project volumes in Fourier space, and paste patches into larger arrays.

A volume is prepared once (``prepare_fourier_volume``: zero-padded, centred, 3D FFT). Rotating it
(``rotate_volume_fourier``) and projecting it (``project_fourier_slice``) both sample that spectrum
with the same trilinear interpolation, so the z-sum of a rotated box equals its projection to float
precision (central-slice theorem). Rotation matrices act on (x, y, z) vectors about the box centre
(voxel n // 2); x_rotated = R · x. Projections are line integrals along z in (value · Å).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tomoforge.methods.fourier import as_tensor


@dataclass
class FourierVolume:
    """Centred full 3D spectrum of a zero-padded cubic volume (size ``n``), real-space centre at n // 2."""

    spectrum: torch.Tensor  # (2, n, n, n) real and imaginary parts, fftshifted (DC at n // 2)
    n: int
    pixel_size_A: float

    @property
    def device(self) -> torch.device:
        return self.spectrum.device


def prepare_fourier_volume(
    volume: torch.Tensor, pixel_size_A: float, padding: float = 2.0, multiple: int = 16
) -> FourierVolume:
    """Pad ``volume`` (z, y, x) to a cube of side ``padding`` × its largest side, rounded up to a
    ``multiple`` (so that binning by 2, 4, 8 keeps the pixel size exact), and FFT it."""
    volume = as_tensor(volume)
    n = int(np.ceil(max(volume.shape) * padding / multiple) * multiple)
    pads = []
    for o in reversed(volume.shape):
        before = n // 2 - o // 2
        pads += [before, n - o - before]
    padded = F.pad(volume, pads)
    spec = torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(padded)))
    return FourierVolume(torch.stack([spec.real, spec.imag]).contiguous(), n, float(pixel_size_A))


def bin_fourier_volume(fv: FourierVolume, factor: int) -> FourierVolume:
    """The same box at ``factor`` × the pixel size (Fourier-cropped; values keep their scale)."""
    if factor == 1:
        return fv
    if fv.n % (2 * factor):
        raise ValueError(f"box {fv.n} cannot be binned by {factor} exactly (needs a multiple of {2 * factor})")
    m = fv.n // factor
    lo = fv.n // 2 - m // 2
    spec = fv.spectrum[:, lo : lo + m, lo : lo + m, lo : lo + m] * (m / fv.n) ** 3
    return FourierVolume(spec.contiguous(), m, fv.pixel_size_A * fv.n / m)


def _sample(fv: FourierVolume, k_xyz: torch.Tensor) -> torch.Tensor:
    """Complex trilinear samples of the spectrum at integer-unit frequencies ``k_xyz`` (..., 3)."""
    n = fv.n
    grid = (k_xyz + n // 2) * (2.0 / (n - 1)) - 1.0  # align_corners=True normalisation, order (x, y, z)
    shape = grid.shape[:-1]
    g = grid.reshape(1, 1, 1, -1, 3).to(fv.spectrum.dtype)
    out = F.grid_sample(fv.spectrum[None], g, mode="bilinear", padding_mode="zeros", align_corners=True)
    out = out.reshape(2, *shape)
    return torch.complex(out[0], out[1])


@functools.lru_cache(maxsize=16)
def _frequencies(n: int, ndim: int, device: torch.device | str | None) -> torch.Tensor:
    """Integer frequencies (..., ndim) of a centred n^ndim grid, components (x, y[, z]); cached."""
    k = torch.arange(n, device=device, dtype=torch.float32) - n // 2
    axes = torch.meshgrid(*([k] * ndim), indexing="ij")  # index order (z, y, x) or (y, x)
    return torch.stack(list(reversed(axes)), dim=-1)  # components (x, y[, z])


def _shift_phase(k_xyz: torch.Tensor, shift_xyz_px: Sequence[float] | torch.Tensor, n: int) -> torch.Tensor:
    s = [float(v) for v in shift_xyz_px]
    phase = k_xyz[..., 0] * (-2 * torch.pi * s[0] / n)
    for i in range(1, k_xyz.shape[-1]):
        phase = phase + k_xyz[..., i] * (-2 * torch.pi * s[i] / n)
    return torch.polar(torch.ones_like(phase), phase)


def project_fourier_slice(
    fv: FourierVolume, rotation_xyz: np.ndarray, shift_xy_px: tuple[float, float] = (0.0, 0.0)
) -> torch.Tensor:
    """Projection (y, x), n × n, along z of the volume rotated by ``rotation_xyz`` and translated by
    ``shift_xy_px`` (pixels, sub-pixel exact); line integral in value · Å."""
    n = fv.n
    k2 = _frequencies(n, 2, fv.device)  # (n, n, 2): kx, ky
    r = torch.as_tensor(np.asarray(rotation_xyz), dtype=torch.float32, device=fv.device)
    src = k2 @ r[:2]  # row vector k · R = (Rᵀ k)ᵀ with k_z = 0: the source frequency of an output one
    spec = _sample(fv, src)
    if any(float(s) != 0.0 for s in shift_xy_px):
        spec = spec * _shift_phase(k2, shift_xy_px, n)
    image = torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(spec))).real
    return image * fv.pixel_size_A


def rotate_volume_fourier(
    fv: FourierVolume, rotation_xyz: np.ndarray, shift_xyz_px: tuple[float, float, float] = (0.0, 0.0, 0.0)
) -> torch.Tensor:
    """The padded volume (z, y, x), n³, rotated by ``rotation_xyz`` about its centre and translated by
    ``shift_xyz_px`` voxels, resampled in Fourier space."""
    n = fv.n
    k3 = _frequencies(n, 3, fv.device)
    r = torch.as_tensor(np.asarray(rotation_xyz), dtype=torch.float32, device=fv.device)
    spec = _sample(fv, k3 @ r)
    if any(float(s) != 0.0 for s in shift_xyz_px):
        spec = spec * _shift_phase(k3, shift_xyz_px, n)
    return torch.fft.fftshift(torch.fft.ifftn(torch.fft.ifftshift(spec))).real


def project_along_z(volume: torch.Tensor, pixel_size_A: float) -> torch.Tensor:
    """Line integral along z of a volume (z, y, x): Σ_z v · pixel size (value · Å)."""
    return as_tensor(volume).sum(dim=-3) * pixel_size_A


def split_position(position_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(integer part, fractional remainder in [−0.5, 0.5]) of a position in pixels."""
    p = np.asarray(position_px, dtype=np.float64)
    whole = np.round(p)
    return whole.astype(np.int64), p - whole


def paste_add(target: torch.Tensor, patch: torch.Tensor, centre_index: tuple[int, ...]) -> None:
    """Add ``patch`` into ``target`` (same number of dims) in place, with patch voxel n // 2 at
    ``centre_index`` of target; the parts outside ``target`` are dropped."""
    t_sl, p_sl = [], []
    for size_t, size_p, c in zip(target.shape, patch.shape, centre_index):
        start = int(c) - size_p // 2
        lo, hi = max(start, 0), min(start + size_p, size_t)
        if hi <= lo:
            return
        t_sl.append(slice(lo, hi))
        p_sl.append(slice(lo - start, hi - start))
    target[tuple(t_sl)] += patch[tuple(p_sl)].to(target.dtype)
