"""Spectra with the fitted model, as images for a viewer: data in the left half, model in the right.

Each (y, x) pixel of a centred box × box spectrum takes the value of its (angle, radius) bin of the
polar grid (the strips averaged), so data and model are shown exactly as they were compared: the
background-subtracted, normalised amplitude spectrum and the high-passed model, both scaled to unit
SD within the fit band and clipped at ±3.
"""

from __future__ import annotations

import math

import torch

from tomoforge.methods.ctf.estimate.background import running_mean
from tomoforge.methods.ctf.estimate.fit import CTFFit
from tomoforge.methods.ctf.estimate.model import Optics, StripSpectra, half_window_px, modulation, ring_model


def _full_plane_bins(spectra: StripSpectra) -> torch.Tensor:
    """Flat (angle, radius) bin of every pixel of the centred full-plane spectrum (box, box), −1 outside."""
    g = spectra.grid
    n = g.box
    f = torch.fft.fftshift(torch.fft.fftfreq(n, dtype=torch.float64))
    ky, kx = torch.meshgrid(f, f, indexing="ij")
    r = torch.round(torch.sqrt(ky * ky + kx * kx) * n).long()
    theta = torch.remainder(torch.atan2(ky, kx) + math.pi / 2, math.pi)
    a = torch.clamp((theta / math.pi * g.n_angles).long(), max=g.n_angles - 1)
    return torch.where(r < g.n_radii, a * g.n_radii + r, torch.full_like(r, -1))


def _scaled(values: torch.Tensor, band: torch.Tensor) -> torch.Tensor:
    sd = values[:, band].std().clamp(min=1e-12)
    return (values / sd).clamp(-3, 3)


def diagnostic_images(
    spectra: list[StripSpectra], fits: list[CTFFit], optics: Optics, resolution_low_A: float = 50.0
) -> torch.Tensor:
    """(n, box, box) float32 images, one per fit: data left, model right, origin at the centre."""
    out = []
    for sp, fit in zip(spectra, fits):
        sp = sp.to("cpu")
        g = sp.grid
        half = 0.5 * (fit.defocus_u_A - fit.defocus_v_A)
        ang = math.radians(2 * fit.astigmatism_angle_deg)
        mean = torch.tensor([fit.defocus_A])
        h = half_window_px(g, optics, fit.defocus_A)
        data = modulation(sp.amplitude, h).mean(0)
        q = ring_model(
            sp,
            optics,
            mean,
            torch.tensor([half * math.cos(ang)]),
            torch.tensor([half * math.sin(ang)]),
            torch.tensor([math.radians(fit.phase_shift_deg)]),
        )
        model = (q - running_mean(q, h))[0].mean(0)
        band = g.k_A >= 1 / resolution_low_A
        data, model = _scaled(data, band), _scaled(model, band)
        bins = _full_plane_bins(sp)
        inside = bins >= 0
        image = torch.zeros(bins.shape, dtype=torch.float32)
        left = torch.arange(g.box)[None, :] < g.box // 2
        image[inside & left] = data.reshape(-1)[bins[inside & left]].float()
        image[inside & ~left] = model.reshape(-1)[bins[inside & ~left]].float()
        out.append(image)
    return torch.stack(out)
