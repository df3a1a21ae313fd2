"""Fourier weights that make a template look like the tomogram: missing wedge, per-tilt CTF, dose and cosine
weighting, spectral whitening and a band-pass in Å.

All weights live on the rfft grid of a (z, y, x) box, shape (nz, ny, nx // 2 + 1), DC at index 0
(torch.fft). The tilt axis is the tomogram's y axis (the frame ``reconstruct-tomogram`` writes): view i at
tilt θ_i sees the central plane spanned by ŷ and (cos θ_i, 0, sin θ_i) (x, y, z), so a frequency k in the
x–z plane at angle φ = atan2(k_z, k_x) from x lies in the plane of the view tilted by φ.

The weight at k is the per-view weight interpolated linearly in angle between the two views whose tilts
bracket φ (Grant & Grigorieff exposure attenuation, |CTF| or the signed CTF, cos θ), and 0 outside the tilt
range (the missing wedge): with every per-view weight 1 it is the binary wedge. Frequencies along y alone
(k_x = k_z = 0) lie in every view's plane and get the mean weight of all views. The CTF of a view is taken at
its mean defocus (astigmatism averaged; the defocus gradient across a tilted view is ignored).

Contrast: with ``ctf_corrected`` False the per-view weight is −CTF (positive at low frequency, as
CTF = −[√(1 − A²) sin χ + A cos χ] is negative there), with True |CTF|; the protein's sign in the tomogram
(dark in both cases) is applied by the caller (``template_matching``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tomoforge.methods.ctf.settings import Optics
from tomoforge.methods.ctf.transfer import ctf_from_phase, ctf_phase
from tomoforge.methods.fourier import frequency_grid_3d
from tomoforge.methods.preprocess.dose import critical_exposure

_OPTICS = Optics()


@dataclass(frozen=True, kw_only=True)
class TiltWeighting:
    """What the views of a tomogram's tilt series say about its Fourier sampling.

    ``tilt_angles_deg`` (m,) of the included views (any order); optional per view: ``doses_e_A2``
    (accumulated exposure, e/Å²), ``defocus_A`` (mean defocus, Å, underfocus positive). ``cosine`` weights
    each view by cos θ. ``ctf_corrected``: the tomogram was made from CTF-corrected (phase-flipped) views.
    """

    tilt_angles_deg: tuple[float, ...]
    doses_e_A2: tuple[float, ...] | None = None
    defocus_A: tuple[float, ...] | None = None
    voltage_kV: float = _OPTICS.voltage_kV
    cs_mm: float = _OPTICS.cs_mm
    amplitude_contrast: float = _OPTICS.amplitude_contrast
    ctf_corrected: bool = False
    cosine: bool = False

    def __post_init__(self) -> None:
        m = len(self.tilt_angles_deg)
        if m == 0:
            raise ValueError("a tilt weighting needs at least one view")
        for name in ("doses_e_A2", "defocus_A"):
            value = getattr(self, name)
            if value is not None and len(value) != m:
                raise ValueError(f"{name} has {len(value)} values for {m} views")


def _angle_interpolation(phi_deg: torch.Tensor, tilts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each angle φ: the indices (lo, hi) of the sorted ``tilts`` bracketing it and the fraction f of hi
    (f = -1 where φ lies outside [tilts[0], tilts[-1]])."""
    m = len(tilts)
    hi = torch.searchsorted(tilts, phi_deg.contiguous()).clamp(0, m - 1)
    lo = (hi - 1).clamp(min=0)
    span = tilts[hi] - tilts[lo]
    f = torch.where(span > 0, (phi_deg - tilts[lo]) / span.clamp(min=1e-12), torch.ones_like(phi_deg))
    tol = 1e-6
    outside = (phi_deg < tilts[0] - tol) | (phi_deg > tilts[-1] + tol)
    return lo, hi, torch.where(outside, torch.full_like(f, -1.0), f.clamp(0.0, 1.0))


def _view_weight(
    w: TiltWeighting, index: torch.Tensor, k_A: torch.Tensor, tilts_sorted: torch.Tensor, order: torch.Tensor
) -> torch.Tensor:
    """Per-view weight of view ``index`` (into the sorted views) at each frequency |k| (1/Å): exposure × CTF ×
    cos θ as configured (float64, shaped as ``k_A``)."""
    out = torch.ones_like(k_A)
    if w.doses_e_A2 is not None:
        doses = torch.as_tensor(w.doses_e_A2, dtype=torch.float64, device=k_A.device)[order]
        out = out * torch.exp(-doses[index] / (2 * critical_exposure(k_A, voltage_kV=w.voltage_kV)))
    if w.defocus_A is not None:
        defocus = torch.as_tensor(w.defocus_A, dtype=torch.float64, device=k_A.device)[order]
        ctf = ctf_from_phase(ctf_phase(k_A, defocus[index], w.voltage_kV, w.cs_mm), w.amplitude_contrast)
        out = out * (ctf.abs() if w.ctf_corrected else -ctf)
    if w.cosine:
        out = out * torch.cos(torch.deg2rad(tilts_sorted[index]))
    return out


def tilt_weight(
    shape: tuple[int, int, int],
    pixel_size_A: float,
    weighting: TiltWeighting,
    *,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The 3D Fourier weight of a tomogram's sampling (see the module docstring).

    Parameters
    ----------
    shape : (nz, ny, nx)
        The real-space box (voxels).
    pixel_size_A : float
        Voxel size (Å).
    weighting : TiltWeighting
        The views (tilt angles, and optionally doses, defoci, CTF correction, cosine weighting).
    device : torch device, optional

    Returns
    -------
    torch.Tensor, float32, (nz, ny, nx // 2 + 1)
        The weight: 0 in the missing wedge; 1 inside it for the binary wedge.
    """
    kz, ky, kx = (g.to(torch.float64) for g in frequency_grid_3d(shape, pixel_size_A, rfft=True, device=device))
    k_A = torch.sqrt(kz * kz + ky * ky + kx * kx)
    tilts = torch.as_tensor(weighting.tilt_angles_deg, dtype=torch.float64, device=k_A.device)
    tilts_sorted, order = torch.sort(tilts)
    phi = torch.rad2deg(torch.atan2(kz, kx))  # kx ≥ 0 on the rfft grid: φ in [−90, 90]
    lo, hi, f = _angle_interpolation(phi, tilts_sorted)
    inside = f >= 0
    f = f.clamp(min=0.0)
    weight = (1 - f) * _view_weight(weighting, lo, k_A, tilts_sorted, order) + f * _view_weight(
        weighting, hi, k_A, tilts_sorted, order
    )
    weight = torch.where(inside, weight, torch.zeros_like(weight))
    on_axis = (kx == 0) & (kz == 0)
    if bool(on_axis.any()):
        k_axis = k_A[on_axis]
        views = torch.arange(len(tilts), device=k_A.device)
        every = _view_weight(
            weighting, views[:, None].expand(-1, len(k_axis)), k_axis[None].expand(len(views), -1), tilts_sorted, order
        )
        weight[on_axis] = every.mean(0)
    return weight.to(torch.float32)


def radial_profile(volume: torch.Tensor, *, n_shells: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean power |F(k)|² of a (z, y, x) volume in shells of |k| (cycles/voxel, 0 to √3/2).

    Returns
    -------
    (shell centres (n,), mean power (n,)), float64: ``n_shells`` equal shells from 0 to √3/2 (default: the
    largest side, rounded down to even).
    """
    shape = (int(volume.shape[-3]), int(volume.shape[-2]), int(volume.shape[-1]))
    n = n_shells or max(shape) // 2 * 2
    spec = torch.fft.rfftn(volume.to(torch.float32))
    kz, ky, kx = frequency_grid_3d(shape, 1.0, rfft=True, device=volume.device)
    k = torch.sqrt(kz * kz + ky * ky + kx * kx).to(torch.float64)
    edges = torch.linspace(0.0, math.sqrt(3) / 2 + 1e-9, n + 1, dtype=torch.float64, device=volume.device)
    idx = torch.bucketize(k.reshape(-1), edges[1:-1])
    power = spec.abs().to(torch.float64).reshape(-1) ** 2
    total = torch.zeros(n, dtype=torch.float64, device=volume.device).index_add_(0, idx, power)
    count = torch.zeros(n, dtype=torch.float64, device=volume.device).index_add_(0, idx, torch.ones_like(power))
    return 0.5 * (edges[1:] + edges[:-1]), total / count.clamp(min=1)


def whitening_filter(volume: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The spectral whitening filter of a tomogram: 1 / √(mean power) in shells of |k| (cycles/voxel),
    normalised to 1 at its maximum; empty shells (corners beyond the sampled ones) get the last value."""
    k, power = radial_profile(volume)
    filt = torch.where(power > 0, 1.0 / torch.sqrt(power.clamp(min=1e-300)), torch.zeros_like(power))
    filt[0] = 0.0  # the mean carries no structure
    filled = filt > 0
    if bool(filled.any()):
        last = int(torch.nonzero(filled).max())
        filt[last + 1 :] = filt[last]
        filt = filt / filt.max()
    return k, filt


def radial_on_grid(
    shells: torch.Tensor, values: torch.Tensor, shape: tuple[int, int, int], *, device: torch.device | str | None = None
) -> torch.Tensor:
    """A radial function (``values`` at |k| = ``shells``, cycles/voxel) evaluated on the rfft grid of ``shape``
    by linear interpolation (float32)."""
    kz, ky, kx = frequency_grid_3d(shape, 1.0, rfft=True, device=device)
    k = torch.sqrt(kz * kz + ky * ky + kx * kx).to(torch.float64)
    s = shells.to(device=k.device, dtype=torch.float64)
    v = values.to(device=k.device, dtype=torch.float64)
    j = torch.searchsorted(s, k.reshape(-1).contiguous()).clamp(1, len(s) - 1)
    f = ((k.reshape(-1) - s[j - 1]) / (s[j] - s[j - 1])).clamp(0.0, 1.0)
    return ((1 - f) * v[j - 1] + f * v[j]).reshape(k.shape).to(torch.float32)


def bandpass_radial(
    k_A: torch.Tensor,
    *,
    highpass_A: float | None = None,
    lowpass_A: float | None = None,
    edge_A_inv: float,
) -> torch.Tensor:
    """A band-pass at frequencies ``k_A`` (1/Å, any shape): 0 below 1/``highpass_A``, 1 between, 0 beyond
    1/``lowpass_A`` (Å), each edge a raised cosine ``edge_A_inv`` (1/Å) wide, centred on the cut-off."""
    out = torch.ones_like(k_A)
    if lowpass_A is not None:
        t = ((k_A - 1.0 / lowpass_A) / edge_A_inv + 0.5).clamp(0.0, 1.0)
        out = out * 0.5 * (1 + torch.cos(math.pi * t))
    if highpass_A is not None:
        t = ((k_A - 1.0 / highpass_A) / edge_A_inv + 0.5).clamp(0.0, 1.0)
        out = out * 0.5 * (1 - torch.cos(math.pi * t))
    return out


def bandpass(
    shape: tuple[int, int, int],
    pixel_size_A: float,
    *,
    highpass_A: float | None = None,
    lowpass_A: float | None = None,
    edge_A_inv: float | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``bandpass_radial`` on the rfft grid of ``shape`` (z, y, x) with voxels of ``pixel_size_A`` (edge default:
    two Fourier voxels of the largest side); float32 (nz, ny, nx // 2 + 1)."""
    kz, ky, kx = frequency_grid_3d(shape, pixel_size_A, rfft=True, device=device)
    k = torch.sqrt(kz * kz + ky * ky + kx * kx)
    width = edge_A_inv if edge_A_inv is not None else 2.0 / (max(shape) * pixel_size_A)
    return bandpass_radial(k, highpass_A=highpass_A, lowpass_A=lowpass_A, edge_A_inv=width)


def default_views(tilt_min_deg: float, tilt_max_deg: float, step_deg: float) -> Sequence[float]:
    """Tilt angles (°) from ``tilt_min_deg`` to ``tilt_max_deg`` by ``step_deg`` (a binary wedge's views)."""
    return tuple(float(a) for a in np.arange(tilt_min_deg, tilt_max_deg + step_deg / 2, step_deg))
