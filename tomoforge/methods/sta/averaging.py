"""Averaging subtomograms with their orientations and 3D weights, per half set, in Fourier space.

A particle's subtomogram s (tomogram frame, centre voxel n // 2) holds its reference rotated by R
(x_tomo = R x_ref): s(R x) ≈ map(x), so in Fourier space S(R k) ≈ W(R k) · M(k) with W the subtomogram's
3D weight (its transfer: wedge, |CTF|, dose; tomogram frame, ``extraction.subtomogram_weights``). Each
subtomogram's spectrum is taken on the grid of its box zero-padded to 2n (finer Fourier sampling, one ``rfftn``),
its weight upsampled to the same grid (linearly, once), and both sampled trilinearly at R k in one ``grid_sample``
for k on the average's half grid (the box's own, or the padded box's with ``fine_grid``; with ``nyquist_sphere``
only within the box's Nyquist sphere, the average 0 beyond it). The half set's map is the Wiener-like estimate

    M_h(k) = Σ_p W_p(R_p k) S_p(R_p k) / (Σ_p W_p(R_p k)² + ε),   ε = ``wiener_constant`` · mean Σ_p W_p²

or, for CTF-premultiplied data D_p with its Σ CTF² weight W_p (``premultiplied``: RELION's pseudo-subtomograms,
D ≈ W · M), RELION's

    M_h(k) = Σ_p D_p(R_p k) / (Σ_p W_p(R_p k) + ε),   ε = ``wiener_constant`` · mean Σ_p W_p

(the full map the same over both halves). Without weights W = 1: the plain mean. Half sets never mix.
Only the half spectrum (k_x ≥ 0) is sampled (S(−k) = conj S(k)), in batches of particles. Trilinear sampling of
the padded spectrum multiplies the map by sinc²(x / 2n) on each axis (x in voxels from the centre); the maps are
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


def _alternating(n: int, device: torch.device) -> torch.Tensor:
    """(−1)^j for j = 0 … n − 1, float32."""
    return 1.0 - 2.0 * torch.remainder(torch.arange(n, device=device), 2).to(torch.float32)


def half_spectrum(volumes: torch.Tensor, padded: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """(m, 2, P, P, P // 2 + 1) real and imaginary parts of the ``rfftn`` half spectra of (m, n, n, n) volumes
    zero-padded to P = ``padded`` (even), origin at their centre voxel n // 2; z and y centred (index P // 2
    is frequency 0), x from 0 to P // 2; written into ``out`` (a view of that shape) where given.

    The box is padded about its centre voxel (which lands on P // 2) and transformed in one ``rfftn``: a sign
    (−1)^(j_z + j_y) on the input centres z and y, and (−1)^(i_z + i_y + i_x) on the output moves the origin from
    voxel P // 2 to the centre voxel; the second sign is applied while the spectrum is copied to real channels."""
    n = volumes.shape[-1]
    dev = volumes.device
    lo = padded // 2 - n // 2
    sign = _alternating(n, dev)
    x = F.pad(volumes.to(torch.float32) * (sign[:, None, None] * sign[None, :, None]), (lo, padded - n - lo) * 3)
    spec = torch.view_as_real(torch.fft.rfftn(x, dim=(-3, -2, -1))).permute(0, 4, 1, 2, 3)
    s, sx = _alternating(padded, dev), _alternating(padded // 2 + 1, dev)
    pattern = s[:, None, None] * s[None, :, None] * sx[None, None, :]
    if out is None:
        return spec * pattern
    return torch.mul(spec, pattern, out=out)


def upsample_weights(weights: torch.Tensor, padded: int, out: torch.Tensor) -> torch.Tensor:
    """Weights (w, n, n, n // 2 + 1) (``rfftn`` grid) on the half grid of the box padded to P = 2n
    (``half_spectrum``'s layout: z, y centred, x ≥ 0), written into ``out`` (w, P, P, P // 2 + 1): linear
    interpolation along each axis, 0 beyond the grid, so that trilinear sampling of the result at 2 q equals
    trilinear sampling of the weights at q (one ``interpolate`` to the midpoints, the outermost half step set
    to half the edge)."""
    n = weights.shape[-2]
    if padded != 2 * n:
        raise ValueError(f"weights of box {n} upsampled to {padded}: only to twice the box")
    w = torch.fft.fftshift(weights.to(torch.float32), dim=(-3, -2))  # centred: index n // 2 is frequency 0
    first = n % 2  # the padded grid's index of the weights' lowest frequency, −(n // 2)
    size = (2 * n - 1, 2 * n - 1, 2 * (n // 2) + 1)
    fine = F.interpolate(w[:, None], size=size, mode="trilinear", align_corners=True)[:, 0]
    out[:, first : first + size[0], first : first + size[1], : size[2]] = fine
    if size[2] < out.shape[-1]:  # an odd box: x's last half step lies beyond the weights' last column
        out[..., size[2]] = 0.5 * out[..., size[2] - 1]
    last = first + size[0]
    if first:  # an odd box: the lowest half step (frequency −n / 2) lies outside the weights: half the edge
        out[:, :, 0] = 0.5 * out[:, :, 1]
        out[:, 0] = 0.5 * out[:, 1]
    if last < padded:  # an even box: the highest half step, n / 2 − 1 / 2, between the edge and 0
        out[:, :, last] = 0.5 * out[:, :, last - 1]
        out[:, last] = 0.5 * out[:, last - 1]
    return out


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
    and the denominators of each half (the summed squared weights Σ W_p²(R_p k), or Σ W_p(R_p k) for
    premultiplied data) on the average's ``half_grid`` (box, box, box // 2 + 1; with ``fine_grid`` the padded
    box's, 2 box, 2 box, box + 1; with ``nyquist_sphere`` 0 beyond it), reference frame."""

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
    premultiplied: bool = False,
    wiener_constant: float = 0.01,
    batch: int = 8,
    fine_grid: bool = True,
    nyquist_sphere: bool = False,
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
    premultiplied : bool
        False: the weights are the data's transfer (S = W M; Σ W S / Σ W²). True: the data is CTF-premultiplied
        and the weights its Σ CTF² (RELION's pseudo-subtomograms; Σ D / Σ W).
    wiener_constant : float
        ε as a fraction of the mean of Σ W² (regularises frequencies few particles measured).
    batch : int
        Particles per vectorised batch.
    fine_grid : bool
        True: the average's spectrum on the padded box's half grid (2n, 2n, n + 1), then cropped to n³ (exact).
        False: on the box's own half grid (n, n, n // 2 + 1), 8× fewer samples (2.2× the particles per second
        at box 64), but every alias of the trilinear sampling wraps into the box: rotated copies of a map
        average back to it at r = 0.99998 (0.999999 on the fine grid) with 5 % more mass (its sum).
    nyquist_sphere : bool
        True: only frequencies within the box's Nyquist sphere are averaged (52 % of the half grid, as RELION
        does), the cube's corners are 0: ~1.4× the particles per second on the fine grid, but the real-space map
        lacks the corners' detail (a noise-free map-back's correlation with its tomogram 0.91 instead of 0.95).
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
    k_all = half_grid(out, dev)  # the average's half grid (out, out, out // 2 + 1, 3)
    grid_shape = k_all.shape[:-1]
    inside = (k_all * k_all).sum(-1).reshape(-1) <= (out / 2 if nyquist_sphere else np.inf) ** 2
    k = k_all.reshape(-1, 3)[inside]  # (M, 3): the frequencies sampled
    # grid_sample's coordinates of R k on the padded half grid: g = σ A R k + b, σ = ±1 so that x ≥ 0
    scale = torch.tensor([2.0 / (big // 2), 2.0 / (big - 1), 2.0 / (big - 1)], device=dev) * (2.0 * n / out)
    bias = torch.tensor([-1.0, big // 2 * 2.0 / (big - 1) - 1.0, big // 2 * 2.0 / (big - 1) - 1.0], device=dev)
    w_box, index = None, None
    if weights is not None:
        w_box = weights if isinstance(weights, torch.Tensor) else torch.from_numpy(np.asarray(weights))
        w_box = w_box.to(dev, torch.float32)
        index = torch.as_tensor(
            np.asarray(weight_index, dtype=np.int64)
            if weight_index is not None
            else (np.zeros(m, dtype=np.int64) if w_box.shape[0] == 1 else np.arange(m)),
            device=dev,
        )
    # the weights: upsampled to the padded grid and sampled with the data on the fine grid; on the box grid (8×
    # fewer samples than the upsampling's) sampled on their own, at g_w = α g + β
    merged = w_box is not None and fine_grid
    if w_box is not None and not merged:
        w_box = torch.fft.fftshift(w_box, dim=(-3, -2))[:, None]  # (w, 1, n, n, n // 2 + 1), z and y centred
        s_w = torch.tensor([2.0 / max(n // 2, 1), 2.0 / (n - 1), 2.0 / (n - 1)], device=dev)
        alpha = s_w / (2.0 * scale * out / (2.0 * n))
        beta = torch.tensor([-1.0, n // 2 * 2.0 / (n - 1) - 1.0, n // 2 * 2.0 / (n - 1) - 1.0], device=dev)
        beta = beta - alpha * bias
    channels = 3 if merged else 2
    num = torch.zeros((2, 2, k.shape[0]), dtype=torch.float32, device=dev)  # half, (re, im), frequency
    den = torch.zeros((2, k.shape[0]), dtype=torch.float32, device=dev)
    for start in range(0, m, batch):
        keep = np.flatnonzero(np.isin(halves[start : start + batch], (1, 2))) + start
        if len(keep) == 0:
            continue
        b = len(keep)
        chunk = volumes[keep[0] : keep[-1] + 1][keep - keep[0]]  # one contiguous read of a memory map
        vols = torch.as_tensor(np.asarray(chunk) if not isinstance(chunk, torch.Tensor) else chunk)
        grids = torch.empty((b, channels, big, big, big // 2 + 1), dtype=torch.float32, device=dev)
        half_spectrum(vols.to(dev, torch.float32), big, out=grids[:, :2])
        if w_box is not None and index is not None:
            used, which = torch.unique(index[torch.as_tensor(keep, device=dev)], return_inverse=True)
        if merged and w_box is not None:
            if len(used) == b:
                upsample_weights(w_box[used], big, grids[:, 2])
            else:  # weights shared within the batch: each upsampled once
                grids[:, 2] = upsample_weights(w_box[used], big, grids.new_empty(len(used), *grids.shape[2:]))[which]
        a = rot[torch.as_tensor(keep, device=dev)] * scale[None, :, None]  # (b, 3, 3): A R
        g = torch.matmul(k, a.transpose(1, 2))  # (b, M, 3)
        sign = torch.where(g[..., :1] < 0, -1.0, 1.0)  # S(−q) = conj S(q), W(−q) = W(q): read the stored half
        torch.addcmul(bias, g, sign, out=g)
        sampled = F.grid_sample(
            grids, g.view(b, 1, 1, -1, 3), mode="bilinear", padding_mode="zeros", align_corners=True
        ).view(b, channels, -1)
        del grids
        if w_box is not None and not merged:
            wg = w_box[used].expand(b, -1, -1, -1, -1) if len(used) == 1 else w_box[used][which]
            gw = torch.addcmul(beta, g, alpha).view(b, 1, 1, -1, 3)
            wv = F.grid_sample(wg, gw, mode="bilinear", padding_mode="zeros", align_corners=True).view(b, 1, -1)
            sampled = torch.cat([sampled, wv], dim=1)
        del g
        sampled[:, 1] *= sign[..., 0]
        h = torch.as_tensor(halves[keep] - 1, device=dev)
        onehot = (h[None, :] == torch.arange(2, device=dev)[:, None]).to(torch.float32)  # (2, b): sums per half
        if w_box is None:  # no weights: the plain mean
            den += onehot.sum(1)[:, None]
        elif premultiplied:  # data Σ CTF·view and weight Σ CTF²: summed as they are
            den.addmm_(onehot, sampled[:, 2])
        else:  # W S and W²
            wv = sampled[:, 2]
            sampled[:, :2] *= wv[:, None]
            den.addmm_(onehot, wv * wv)
        num.view(2, -1).addmm_(onehot, sampled[:, :2].reshape(b, -1))
    eps = wiener_constant * float(den.sum(0).mean().clamp(min=1e-12))
    num_grid = torch.zeros((2, 2, inside.numel()), dtype=torch.float32, device=dev)
    num_grid[..., inside] = num
    den_grid = torch.zeros((2, inside.numel()), dtype=torch.float32, device=dev)
    den_grid[..., inside] = den
    num, den = num_grid.view(2, 2, *grid_shape), den_grid.view(2, *grid_shape)
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
