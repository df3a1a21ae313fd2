"""Averaging subtomograms with their orientations and 3D weights, per half set, in Fourier space.

A particle's subtomogram s (tomogram frame, centre voxel n // 2) holds its reference rotated by R
(x_tomo = R x_ref): s(R x) ≈ map(x), so in Fourier space S(R k) ≈ W(R k) · M(k) with W the subtomogram's
3D weight (its transfer: wedge, |CTF|, dose; tomogram frame, ``extraction.subtomogram_weights``). Each
subtomogram's spectrum is taken on the grid of its box zero-padded to 2n (finer Fourier sampling; the padded
box is never built, ``half_spectrum``), sampled trilinearly at R k for k on the average's half grid (the box's
own by default, the padded box's with ``fine_grid``), and the half set's map is the Wiener-like
estimate

    M_h(k) = Σ_p W_p(R_p k) S_p(R_p k) / (Σ_p W_p(R_p k)² + ε),   ε = ``wiener_constant`` · mean Σ_p W_p²

(the full map the same over both halves). Without weights W = 1: the plain mean. Half sets never mix.
Only the half spectrum (k_x ≥ 0) is sampled (S(−k) = conj S(k)), in batches of particles, and W_p(R k) is
sampled once per particle from the weights it shares with others (``weight_index``). Trilinear sampling of the
padded spectrum multiplies the map by sinc²(x / 2n) on each axis (x in voxels from the centre); the maps are
divided by it (gridding correction).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike

from tomoforge.methods.fourier import pad_to


def full_weight(weight_rfft: torch.Tensor, box: int) -> torch.Tensor:
    """A real, centrosymmetric weight on the ``rfftn`` grid (…, n, n, n // 2 + 1) → the centred full grid
    (…, n, n, n), DC at voxel n // 2 (W(−k) = W(k) fills the other half)."""
    dev = weight_rfft.device
    kc = torch.arange(box, device=dev) - box // 2  # centred frequencies of the output
    kz, ky, kx = torch.meshgrid(kc, kc, kc, indexing="ij")
    flip = kx < 0
    sz, sy, sx = torch.where(flip, -kz, kz), torch.where(flip, -ky, ky), torch.where(flip, -kx, kx)
    sx = sx.clamp(max=box // 2)  # an even box's −n/2 column is its own mirror: read it from +n/2
    return weight_rfft[..., torch.remainder(sz, box), torch.remainder(sy, box), sx]


def sample_centred(grid_values: torch.Tensor, k_xyz: torch.Tensor) -> torch.Tensor:
    """Trilinear samples (m, C, …) of centred grids (m, C, N, N, N) at integer-unit frequencies (m, …, 3)."""
    n = grid_values.shape[-1]
    g = (k_xyz + n // 2) * (2.0 / (n - 1)) - 1.0
    shape = g.shape[1:-1]
    out = F.grid_sample(
        grid_values, g.reshape(g.shape[0], 1, 1, -1, 3), mode="bilinear", padding_mode="zeros", align_corners=True
    )
    return out.reshape(grid_values.shape[0], grid_values.shape[1], *shape)


def trilinear_apodisation(n: int, padded: int, device: torch.device) -> torch.Tensor:
    """(n, n, n) factor by which trilinear sampling of the spectrum of a box padded to ``padded`` multiplies the
    central n³ voxels: Π sinc²(x / padded) over the axes, x in voxels from the centre."""
    x1 = (torch.arange(n, device=device, dtype=torch.float32) - n // 2) / padded
    sinc2 = torch.sinc(x1) ** 2
    return sinc2[:, None, None] * sinc2[None, :, None] * sinc2[None, None, :]


def centred_spectrum(volumes: torch.Tensor, padded: int) -> torch.Tensor:
    """(m, 2, P, P, P) real and imaginary parts of the centred spectra (DC at P // 2) of (m, n, n, n) volumes
    zero-padded to P = ``padded`` about their centre voxel n // 2."""
    dims = (-3, -2, -1)
    x = pad_to(volumes, (padded, padded, padded))
    spec = torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(x, dim=dims), dim=dims), dim=dims)
    return torch.stack([spec.real, spec.imag], dim=1)


def centred_grid(n: int, device: torch.device) -> torch.Tensor:
    """(n, n, n, 3) integer frequencies (x, y, z) of a centred grid (DC at n // 2)."""
    kc = torch.arange(n, device=device, dtype=torch.float32) - n // 2
    kz, ky, kx = torch.meshgrid(kc, kc, kc, indexing="ij")
    return torch.stack([kx, ky, kz], dim=-1)


def centred_to_volume(spectrum: torch.Tensor, n: int) -> torch.Tensor:
    """The central n³ voxels of the inverse of centred complex spectra (…, P, P, P)."""
    dims = (-3, -2, -1)
    big = spectrum.shape[-1]
    vol = torch.fft.fftshift(torch.fft.ifftn(torch.fft.ifftshift(spectrum, dim=dims), dim=dims), dim=dims).real
    lo = big // 2 - n // 2
    return vol[..., lo : lo + n, lo : lo + n, lo : lo + n]


def half_spectrum(volumes: torch.Tensor, padded: int) -> torch.Tensor:
    """(m, 2, P, P, P // 2 + 1) real and imaginary parts of the ``rfftn`` half spectra of (m, n, n, n) volumes
    zero-padded to P = ``padded`` (even), origin at their centre voxel n // 2; z and y centred (index P // 2
    is frequency 0), x from 0 to P // 2.

    The padded box is never built: the box is laid out about the origin and transformed one axis at a time
    (x on the n² rows, then y, then z); the z and y halves are swapped by a sign (−1)^j on the input."""
    n = volumes.shape[-1]
    dev = volumes.device
    c = n // 2

    def about_origin(x: torch.Tensor, dim: int) -> torch.Tensor:  # voxel c → index 0, zeros between
        shape = list(x.shape)
        shape[dim] = padded - n
        return torch.cat([x.narrow(dim, c, n - c), x.new_zeros(shape), x.narrow(dim, 0, c)], dim=dim)

    sign = (1.0 - 2.0 * torch.remainder(torch.arange(n, device=dev) - c, 2)).to(torch.float32)  # (−1)^(j − c)
    x = volumes.to(torch.float32) * (sign[:, None, None] * sign[None, :, None])
    spec = torch.fft.rfft(about_origin(x, -1), dim=-1)
    spec = torch.fft.fft(about_origin(spec, -2), dim=-2)
    spec = torch.fft.fft(about_origin(spec, -3), dim=-3)
    return torch.view_as_real(spec).permute(0, 4, 1, 2, 3)


def sample_half(grid_values: torch.Tensor, q_xyz: torch.Tensor, unit: float = 1.0) -> torch.Tensor:
    """Trilinear samples (m, C, …) of half grids (m, C, N, N, W) (z, y centred, x from 0 to W − 1) at
    frequencies (m, …, 3) (x, y, z; ``unit`` grid steps each, x ≥ 0); outside the grid: 0."""
    n, width = grid_values.shape[-2], grid_values.shape[-1]
    scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / (n - 1), 2.0 / (n - 1)], device=q_xyz.device)
    bias = torch.tensor([0.0, n // 2, n // 2], device=q_xyz.device) * scale - 1.0
    g = torch.addcmul(bias, q_xyz, scale * unit)  # grid_sample's coordinates, in one pass
    shape = g.shape[1:-1]
    out = F.grid_sample(
        grid_values, g.reshape(g.shape[0], 1, 1, -1, 3), mode="bilinear", padding_mode="zeros", align_corners=True
    )
    return out.reshape(grid_values.shape[0], grid_values.shape[1], *shape)


def half_grid(n: int, device: torch.device) -> torch.Tensor:
    """(n, n, n // 2 + 1, 3) integer frequencies (x, y, z) of a half grid (z, y centred, x ≥ 0)."""
    kc = torch.arange(n, device=device, dtype=torch.float32) - n // 2
    kx = torch.arange(n // 2 + 1, device=device, dtype=torch.float32)
    kz, ky, kxx = torch.meshgrid(kc, kc, kx, indexing="ij")
    return torch.stack([kxx, ky, kz], dim=-1)


def half_to_volume(spectrum: torch.Tensor, n: int) -> torch.Tensor:
    """Volumes (…, n, n, n), centre voxel n // 2, from complex half spectra (…, n, n, n // 2 + 1) (``half_grid``
    layout, origin at the centre voxel)."""
    spec = torch.fft.ifftshift(spectrum, dim=(-3, -2))
    vol = torch.fft.irfftn(spec, s=(n, n, n), dim=(-3, -2, -1))
    return torch.fft.fftshift(vol, dim=(-3, -2, -1))


class VolumeStack(Protocol):
    """Anything that reads (m, n, n, n) volumes where sliced: an array, a memory map, a stack of files."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def __getitem__(self, index: slice) -> Any: ...


@dataclass(frozen=True)
class Average:
    """Half maps and map (box³, float32, z y x, centre voxel box // 2), the number of particles in each half,
    and the summed squared weights Σ W_p²(R_p k) of each half on the average's ``half_grid`` (box, box,
    box // 2 + 1; with ``fine_grid`` the padded box's, 2 box, 2 box, box + 1), reference frame."""

    half1: torch.Tensor
    half2: torch.Tensor
    full: torch.Tensor
    counts: tuple[int, int]
    weight1: torch.Tensor
    weight2: torch.Tensor


def average_subtomograms(
    volumes: torch.Tensor | np.ndarray | VolumeStack,
    rotations: ArrayLike,
    half_sets: ArrayLike,
    *,
    weights: torch.Tensor | np.ndarray | None = None,
    weight_index: ArrayLike | None = None,
    wiener_constant: float = 0.01,
    batch: int = 16,
    fine_grid: bool = True,
    device: torch.device | str | None = None,
) -> Average:
    """Rotate subtomograms into the reference frame and average them per half set (see the module docstring).

    Parameters
    ----------
    volumes : torch.Tensor, numpy.ndarray (may be memory-mapped) or ``VolumeStack``, (m, n, n, n)
        Subtomograms (z, y, x), each particle at voxel n // 2; read batch by batch (a slice at a time).
    rotations : array, (m, 3, 3)
        Each particle's rotation R (x_tomo = R x_ref).
    half_sets : array, (m,)
        1 or 2 for each particle (0 counts in neither half, nor in the map).
    weights : torch.Tensor or numpy.ndarray, (w, n, n, n // 2 + 1), optional
        3D weights (``rfftn`` grid, tomogram frame); none: every weight 1.
    weight_index : array, (m,), optional
        Which weight each particle uses (default: particle i uses weight i, or weight 0 when there is one).
    wiener_constant : float
        ε as a fraction of the mean of Σ W² (regularises frequencies few particles measured).
    batch : int
        Particles per vectorised batch.
    fine_grid : bool
        True: the average's spectrum on the padded box's half grid (2n, 2n, n + 1), then cropped to n³ (exact).
        False: on the box's own half grid (n, n, n // 2 + 1), 8× fewer samples (2.2× the particles per second
        at box 64), but every alias of the trilinear sampling wraps into the box: rotated copies of a map
        average back to it at r = 0.99998 (0.999999 on the fine grid) with 5 % more mass (its sum).
    device : torch.device or str, optional
        Where to compute.

    Returns
    -------
    Average
        The half maps, the map, the counts per half and the summed squared weights.
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    m, n = volumes.shape[0], volumes.shape[-1]
    rot = torch.as_tensor(np.asarray(rotations, dtype=np.float64), dtype=torch.float32, device=dev).reshape(-1, 3, 3)
    halves = np.asarray(half_sets, dtype=np.int64).reshape(-1)
    if len(halves) != m or rot.shape[0] != m:
        raise ValueError(f"{m} volumes, {rot.shape[0]} rotations and {len(halves)} half sets: they must agree")
    big = 2 * n  # the particles' spectra are sampled twice as finely as the box
    out = big if fine_grid else n  # the average's grid
    k = half_grid(out, dev) * (n / out)  # its half grid, in frequencies of the box
    w_half = None
    if weights is not None:
        w = weights if isinstance(weights, torch.Tensor) else torch.from_numpy(np.asarray(weights))
        w_half = torch.fft.fftshift(w.to(dev, torch.float32), dim=(-3, -2))[:, None]  # half-grid layout
        index = torch.as_tensor(
            np.asarray(weight_index, dtype=np.int64)
            if weight_index is not None
            else (np.zeros(m, dtype=np.int64) if w_half.shape[0] == 1 else np.arange(m)),
            device=dev,
        )
    num = torch.zeros((2, 2, *k.shape[:-1]), dtype=torch.float32, device=dev)  # half, (re, im)
    den = torch.zeros((2, *k.shape[:-1]), dtype=torch.float32, device=dev)
    for start in range(0, m, batch):
        keep = np.flatnonzero(np.isin(halves[start : start + batch], (1, 2))) + start
        if len(keep) == 0:
            continue
        chunk = volumes[keep[0] : keep[-1] + 1][keep - keep[0]]  # one contiguous read of a memory map
        vols = torch.as_tensor(np.asarray(chunk) if not isinstance(chunk, torch.Tensor) else chunk)
        spec = half_spectrum(vols.to(dev, torch.float32), big)
        q = torch.einsum("...a,mba->m...b", k, rot[torch.as_tensor(keep, device=dev)])  # R k for each particle
        sign = torch.where(q[..., :1] < 0, -1.0, 1.0)  # S(−q) = conj S(q), W(−q) = W(q): read the stored half
        q = q * sign
        sampled = sample_half(spec, q, 2.0)  # (b, 2, …): the padded grid is twice as fine
        sampled[:, 1] *= sign[..., 0]
        h = torch.as_tensor(halves[keep] - 1, device=dev)
        if w_half is not None:
            wk = index[keep]
            used, which = torch.unique(wk, return_inverse=True)
            grids = w_half[used]
            wv = sample_half(grids.expand(len(keep), -1, -1, -1, -1) if len(used) == 1 else grids[which], q)[:, 0]
            num.index_add_(0, h, sampled * wv[:, None])
            den.index_add_(0, h, wv * wv)
        else:
            num.index_add_(0, h, sampled)
            den += torch.bincount(h, minlength=2).to(den.dtype)[:, None, None, None]
    eps = wiener_constant * float(den.sum(0).mean().clamp(min=1e-12))
    apodisation = trilinear_apodisation(n, big, dev)  # gridding correction
    lo = out // 2 - n // 2

    def back(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
        vol = half_to_volume(torch.complex(numerator[0], numerator[1]) / (denominator + eps), out)
        return (vol[lo : lo + n, lo : lo + n, lo : lo + n] / apodisation).contiguous()

    counts = (int(np.sum(halves == 1)), int(np.sum(halves == 2)))
    return Average(back(num[0], den[0]), back(num[1], den[1]), back(num.sum(0), den.sum(0)), counts, den[0], den[1])


__all__ = [
    "Average",
    "VolumeStack",
    "average_subtomograms",
    "centred_grid",
    "centred_spectrum",
    "centred_to_volume",
    "full_weight",
    "half_grid",
    "half_spectrum",
    "half_to_volume",
    "sample_half",
    "sample_centred",
    "trilinear_apodisation",
]
