"""Tilt series of a 3D specimen made with a CTF that is not the project's (issue 16's foreign data, for
alignment): teamtomo's ``torch-ctf`` on the projections of a slab of random blobs, a fresh amorphous-ice
texture per tilt, Beer–Lambert attenuation, Poisson noise, a known alignment.

The specimen: Gaussian blobs (two sizes) at random (x, y, z) in a slab ``thickness_A`` thick and wider than
the field, projected where the true ``ProjectionModel`` (tilt = nominal + offset, ZRot = the tilt axis,
shifts drifting with |tilt| in acquisition order) puts them: splatted with bilinear weights, blurred by each
blob size in Fourier space. The phase is that projection plus the ice (white, ``ice_rad`` per 2 Å pixel
scaled with the pixel area and 1/cos β, uncorrelated between tilts), under one CTF per tilt; the mean
intensity falls as exp(−T/(λ cos(β + δ))). Nothing of tomoforge's simulator is used.

With ``gold_count`` (for benchmarks' fiducial alignment on the same kind of series), gold spheres of
``gold_diameter_A`` lie on the slab's two surfaces (none overlapping another on its surface): their projected
thickness t (the 3D Fourier transform of a ball on the kz = 0 plane) adds a phase of ``GOLD_RAD_PER_A`` · t under the CTF and dims the intensity by
exp(−t / ``GOLD_MFP_A``). The rest of the series (every other random draw) is the same as without gold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from tomoforge.methods.align.projection_model import ProjectionModel

# gold: mean inner potential ≈ 30 V, interaction constant at 300 kV 6.5e-4 rad/(V·Å); amplitude loss per Å
GOLD_RAD_PER_A = 0.0196
GOLD_MFP_A = 100.0


@dataclass(frozen=True)
class TiltSetup:
    """Image size (px) and pixel size (Å), tilts ±``max_tilt_deg`` in steps of ``step_deg`` (dose-symmetric),
    the true tilt axis and tilt offset (°), slab thickness (Å), blob count per µm², dose (e/Å² per tilt),
    defocus (µm), ice texture (rad per 2 Å pixel), drift of the shifts per view (Å, growing with |tilt|), T/λ,
    seed, gold beads (count on the two surfaces, 0: none) and their diameter (Å)."""

    size: int = 256
    pixel_size_A: float = 8.0
    max_tilt_deg: float = 60.0
    step_deg: float = 3.0
    axis_deg: float = 85.0
    offset_deg: float = 0.8
    thickness_A: float = 1100.0
    blobs_per_um2: float = 20000.0
    dose: float = 3.0
    defocus_um: float = 3.0
    ice_rad: float = 0.27
    drift_A: float = 12.0
    attenuation: float = 0.35
    seed: int = 0
    gold_count: int = 0
    gold_diameter_A: float = 100.0


@dataclass
class TiltData:
    """(n, y, x) float32 images in acquisition order, their nominal tilts (°), the true model, the
    blob centres (m, 3) in Å and the gold beads' centres (g, 3) in Å."""

    images: np.ndarray
    nominal_deg: np.ndarray
    truth: ProjectionModel
    points_A: np.ndarray
    gold_A: np.ndarray


def dose_symmetric(max_tilt_deg: float, step_deg: float) -> np.ndarray:
    """Nominal tilts in dose-symmetric order: 0°, then alternating +/− outwards."""
    k = int(round(max_tilt_deg / step_deg))
    tilts = np.arange(-k, k + 1) * step_deg
    return np.array(sorted(tilts, key=lambda t: (abs(t), t < 0)), dtype=float)


def _splat(uv: torch.Tensor, weights: torch.Tensor, n: int) -> torch.Tensor:
    """(views, n, n) bilinear splat of (views, m, 2) positions (px from the centre) with (m,) weights."""
    views = uv.shape[0]
    x, y = uv[..., 0] + n // 2, uv[..., 1] + n // 2
    x0, y0 = torch.floor(x), torch.floor(y)
    out = torch.zeros(views * n * n, dtype=torch.float64)
    base = (torch.arange(views) * n * n)[:, None]
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            w = (1 - (x - xi).abs()) * (1 - (y - yi).abs()) * weights[None]
            ok = (xi >= 0) & (xi < n) & (yi >= 0) & (yi < n)
            idx = base + (yi.long() * n + xi.long())
            out.index_add_(0, idx[ok], w[ok])
    return out.reshape(views, n, n)


def gold_positions(
    rng: np.random.Generator, count: int, half_A: float, thickness_A: float, diameter_A: float
) -> np.ndarray:
    """(count, 3) bead centres (Å): uniform in x, y within ±``half_A``, on the slab's two surfaces (z = ±thickness/2),
    no two on the same surface closer than a diameter (solid spheres do not overlap; the first version drew
    them independently, and a third of the beads of 40 in the 256² field then overlapped another on their
    surface). Candidates are drawn at once and accepted in order when clear of those accepted before."""
    cand = np.c_[rng.uniform(-half_A, half_A, (8 * count, 2)), rng.choice([-0.5, 0.5], 8 * count) * thickness_A]
    close = np.linalg.norm(cand[:, None] - cand[None], axis=-1) < diameter_A  # z differs: never close
    keep = np.zeros(len(cand), dtype=bool)
    for i in range(len(cand)):  # greedy: sequential by nature, over candidates (not pixels)
        if keep.sum() == count:
            break
        keep[i] = not (close[i, :i] & keep[:i]).any()
    if keep.sum() < count:
        raise ValueError(f"{count} beads of {diameter_A:g} Å do not fit without overlap in ±{half_A:g} Å")
    return cand[keep]


def make_tilts(s: TiltSetup) -> TiltData:
    """The tilt series of ``s`` (see the module docstring)."""
    from torch_ctf import calculate_ctf_2d

    rng = np.random.default_rng(s.seed)
    gen = torch.Generator().manual_seed(s.seed)
    n, px = s.size, s.pixel_size_A
    nominal = dose_symmetric(s.max_tilt_deg, s.step_deg)
    views = len(nominal)
    # shifts: a random walk in acquisition order whose steps grow with |tilt| (stage drift and backlash)
    steps = rng.normal(0.0, s.drift_A, (views, 2)) * (1.0 + np.abs(nominal) / 20.0)[:, None]
    steps[0] = 0.0
    truth = ProjectionModel(nominal + s.offset_deg, s.axis_deg, np.cumsum(steps, axis=0))
    half = 0.75 * n * px
    count = int(s.blobs_per_um2 * (2 * half / 1e4) ** 2)
    points = np.c_[rng.uniform(-half, half, (count, 2)), rng.uniform(-0.5, 0.5, count) * s.thickness_A]
    uv = torch.as_tensor(truth.project_px(points, px))
    ky = torch.fft.fftfreq(n)[:, None] / px
    kx = torch.fft.rfftfreq(n)[None, :] / px
    k2 = ky * ky + kx * kx
    spectrum = torch.zeros((views, n, n // 2 + 1), dtype=torch.complex128)
    for sigma_A, fraction, peak_rad in ((25.0, 0.7, 0.25), (70.0, 0.3, 0.15)):
        pick = torch.as_tensor(rng.random(count) < fraction)
        dens = _splat(uv[:, pick], torch.ones(int(pick.sum()), dtype=torch.float64), n)
        mass = peak_rad * 2 * math.pi * (sigma_A / px) ** 2  # rad·px² of a blob whose peak is ``peak_rad``
        spectrum += torch.fft.rfft2(dens) * mass * torch.exp(-2 * math.pi**2 * sigma_A**2 * k2)
    gold = gold_positions(rng, s.gold_count, 0.4 * n * px, s.thickness_A, s.gold_diameter_A)
    gold_t = torch.zeros((views, n, n), dtype=torch.float64)
    if s.gold_count:
        r = s.gold_diameter_A / 2
        kr = (2 * math.pi * r * torch.sqrt(k2)).clamp(min=1e-6)
        ball = 4 * math.pi * r**3 * (torch.sin(kr) - kr * torch.cos(kr)) / kr**3 / px**2  # Å³ per px²: Å
        g_dens = _splat(torch.as_tensor(truth.project_px(gold, px)), torch.ones(s.gold_count, dtype=torch.float64), n)
        g_spec = torch.fft.rfft2(g_dens) * ball
        spectrum += g_spec * GOLD_RAD_PER_A
        gold_t = torch.fft.irfft2(g_spec, s=(n, n)).clamp(min=0)
    rad = np.deg2rad(nominal + s.offset_deg)
    ice_sd = torch.as_tensor(s.ice_rad * (2.0 / px) / np.sqrt(np.cos(rad)))[:, None, None]
    ice = torch.randn((views, n, n), generator=gen, dtype=torch.float64) * ice_sd
    spectrum += torch.fft.rfft2(ice)
    defocus = s.defocus_um + 0.07 * torch.randn(views, generator=gen, dtype=torch.float64)
    ctf = calculate_ctf_2d(defocus, 0.03, 30.0, 300.0, 2.7, 0.07, 0.0, px, (n, n), True, False)
    contrast = torch.fft.irfft2(spectrum * ctf.to(torch.float64), s=(n, n))
    mean = torch.as_tensor(np.exp(-s.attenuation / np.cos(rad)))[:, None, None]
    intensity = (1.0 + 2.0 * contrast).clamp(min=0.05) * mean * torch.exp(-gold_t / GOLD_MFP_A)
    images = torch.poisson(intensity * s.dose * px * px, generator=gen)
    return TiltData(images.numpy().astype(np.float32), nominal, truth, points, gold)


__all__ = ["TiltData", "TiltSetup", "dose_symmetric", "gold_positions", "make_tilts"]
