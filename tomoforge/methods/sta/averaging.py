"""Averaging subtomograms with their orientations and 3D weights, per half set, in Fourier space.

A particle's subtomogram s (tomogram frame, centre voxel n // 2) holds its reference rotated by R
(x_tomo = R x_ref): s(R x) ≈ map(x), so in Fourier space S(R k) ≈ W(R k) · M(k) with W the subtomogram's
3D weight (its transfer: wedge, |CTF|, dose; tomogram frame, ``extraction.subtomogram_weights``). Each
subtomogram is zero-padded to 2n (finer Fourier sampling), its spectrum sampled trilinearly at R k, and the
half set's map is the Wiener-like estimate

    M_h(k) = Σ_p W_p(R_p k) S_p(R_p k) / (Σ_p W_p(R_p k)² + ε),   ε = ``wiener_constant`` · mean Σ_p W_p²

(the full map the same over both halves). Without weights W = 1: the plain mean. Half sets never mix.
Trilinear sampling of the padded spectrum multiplies the map by sinc²(x / 2n) on each axis (x in voxels from
the centre); the maps are divided by it (gridding correction).
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class Average:
    """Half maps and map (box³, float32, z y x, centre voxel box // 2), the number of particles in each half,
    and the summed squared weights of each half on the centred Fourier grid of the padded box."""

    half1: torch.Tensor
    half2: torch.Tensor
    full: torch.Tensor
    counts: tuple[int, int]
    weight1: torch.Tensor
    weight2: torch.Tensor


def average_subtomograms(
    volumes: torch.Tensor | np.ndarray,
    rotations: ArrayLike,
    half_sets: ArrayLike,
    *,
    weights: torch.Tensor | np.ndarray | None = None,
    weight_index: ArrayLike | None = None,
    wiener_constant: float = 0.01,
    batch: int = 8,
    device: torch.device | str | None = None,
) -> Average:
    """Rotate subtomograms into the reference frame and average them per half set (see the module docstring).

    Parameters
    ----------
    volumes : torch.Tensor or numpy.ndarray, (m, n, n, n)
        Subtomograms (z, y, x), each particle at voxel n // 2.
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
    device : torch.device or str, optional
        Where to compute.

    Returns
    -------
    Average
        The half maps, the map, the counts per half and the summed squared weights.
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    vols = torch.as_tensor(np.asarray(volumes) if not isinstance(volumes, torch.Tensor) else volumes)
    m, n = vols.shape[0], vols.shape[-1]
    rot = torch.as_tensor(np.asarray(rotations, dtype=np.float64), dtype=torch.float32, device=dev).reshape(-1, 3, 3)
    halves = np.asarray(half_sets, dtype=np.int64).reshape(-1)
    if len(halves) != m or rot.shape[0] != m:
        raise ValueError(f"{m} volumes, {rot.shape[0]} rotations and {len(halves)} half sets: they must agree")
    big = 2 * n
    k = centred_grid(big, dev)  # (x, y, z) frequencies of the reference's padded grid
    w_full = None
    if weights is not None:
        w_full = full_weight(
            torch.as_tensor(np.asarray(weights) if not isinstance(weights, torch.Tensor) else weights).to(
                dev, torch.float32
            ),
            n,
        )
        index = (
            np.asarray(weight_index, dtype=np.int64)
            if weight_index is not None
            else (np.zeros(m, dtype=np.int64) if w_full.shape[0] == 1 else np.arange(m))
        )
    num = torch.zeros((2, 2, big, big, big), dtype=torch.float32, device=dev)  # half, (re, im)
    den = torch.zeros((2, big, big, big), dtype=torch.float32, device=dev)
    for start in range(0, m, batch):
        sl = slice(start, start + batch)
        keep = np.flatnonzero(np.isin(halves[sl], (1, 2))) + start
        if len(keep) == 0:
            continue
        spec = centred_spectrum(vols[keep].to(dev, torch.float32), big)
        src = torch.einsum("...a,mba->m...b", k, rot[keep])  # R k for each particle
        sampled = sample_centred(spec, src)  # (b, 2, N, N, N)
        if w_full is not None:
            wv = sample_centred(w_full[index[keep]][:, None], src / 2)[:, 0]  # the weight's grid is n, not 2n
        else:
            wv = torch.ones((len(keep), big, big, big), device=dev)
        for h in (1, 2):
            sel = torch.as_tensor(halves[keep] == h, device=dev)
            if sel.any():
                num[h - 1] += (sampled[sel] * wv[sel][:, None]).sum(0)
                den[h - 1] += (wv[sel] ** 2).sum(0)
    eps = wiener_constant * float(den.sum(0).mean().clamp(min=1e-12))

    def back(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
        spec = torch.complex(numerator[0], numerator[1]) / (denominator + eps)
        return (centred_to_volume(spec, n) / apodisation).contiguous()

    apodisation = trilinear_apodisation(n, big, dev)

    counts = (int(np.sum(halves == 1)), int(np.sum(halves == 2)))
    return Average(back(num[0], den[0]), back(num[1], den[1]), back(num.sum(0), den.sum(0)), counts, den[0], den[1])


__all__ = [
    "Average",
    "average_subtomograms",
    "centred_grid",
    "centred_spectrum",
    "centred_to_volume",
    "full_weight",
    "sample_centred",
    "trilinear_apodisation",
]
