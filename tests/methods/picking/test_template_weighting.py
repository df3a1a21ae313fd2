"""Template weighting: the wedge from the views, per-tilt CTF and dose, whitening and the band-pass (formulas)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tomoforge.methods.ctf.transfer import ctf_1d
from tomoforge.methods.picking.template_weighting import (
    TiltWeighting,
    bandpass,
    radial_on_grid,
    radial_profile,
    tilt_weight,
    whitening_filter,
)
from tomoforge.methods.preprocess.dose import exposure_attenuation

N, PIX = 32, 8.0
TILTS = tuple(float(a) for a in range(-60, 61, 3))


def at(weight: torch.Tensor, kx: int, ky: int, kz: int) -> float:
    """The weight at Fourier voxel (kx, ky, kz) (kx ≥ 0) of an N³ rfft grid."""
    return float(weight[kz % N, ky % N, kx])


def test_binary_wedge_from_the_tilt_range() -> None:
    w = tilt_weight((N, N, N), PIX, TiltWeighting(tilt_angles_deg=TILTS))
    assert at(w, 5, 0, 0) == 1.0  # along x: the 0° view
    assert at(w, 5, 3, 5) == 1.0  # 45° in x–z, inside ±60°
    assert at(w, 3, 0, -5) == 1.0  # −59°
    assert at(w, 2, 0, 6) == 0.0  # 71.6°: the missing wedge
    assert at(w, 0, 0, 5) == 0.0  # along z
    assert at(w, 0, 7, 0) == 1.0  # along y: in every view
    # the sampled fraction of the x–z directions is 120° of 180°
    kz, kx = np.meshgrid(np.fft.fftfreq(N), np.fft.rfftfreq(N), indexing="ij")
    ring = (np.hypot(kz, kx) > 0.2) & (np.hypot(kz, kx) < 0.45)
    both = np.where(kx > 0, 2.0, 1.0)[ring]  # kx > 0 stands for ±k
    fraction = (w[:, 0, :].numpy()[ring] * both).sum() / both.sum()
    assert fraction == pytest.approx(120.0 / 180.0, abs=0.03)


def test_ctf_and_dose_of_the_view_at_each_angle() -> None:
    doses = tuple(2.0 * (i + 1) for i in range(len(TILTS)))
    defoci = tuple(20000.0 + 100.0 * i for i in range(len(TILTS)))
    view = TiltWeighting(tilt_angles_deg=TILTS, doses_e_A2=doses, defocus_A=defoci)
    w = tilt_weight((N, N, N), PIX, view)
    i0 = TILTS.index(0.0)
    k = torch.tensor([5 / (N * PIX)], dtype=torch.float64)  # along x: the 0° view alone
    expected = -ctf_1d(k, defoci[i0]) * exposure_attenuation(k, doses[i0])
    assert at(w, 5, 0, 0) == pytest.approx(float(expected[0]), rel=1e-4)
    # 45°: between the 42° and 45° views; exactly on the 45° one
    i45 = TILTS.index(45.0)
    k45 = torch.tensor([5 * math.sqrt(2) / (N * PIX)], dtype=torch.float64)
    expected = -ctf_1d(k45, defoci[i45]) * exposure_attenuation(k45, doses[i45])
    assert at(w, 5, 0, 5) == pytest.approx(float(expected[0]), rel=1e-4)
    corrected = tilt_weight((N, N, N), PIX, TiltWeighting(tilt_angles_deg=TILTS, defocus_A=defoci, ctf_corrected=True))
    assert bool((corrected >= 0).all())
    assert at(corrected, 5, 0, 0) == pytest.approx(abs(float(ctf_1d(k, defoci[i0])[0])), rel=1e-4)
    cosine = tilt_weight((N, N, N), PIX, TiltWeighting(tilt_angles_deg=TILTS, cosine=True))
    assert at(cosine, 5, 0, 5) == pytest.approx(math.cos(math.radians(45.0)), rel=1e-5)


def test_bandpass_in_angstrom() -> None:
    f = bandpass((N, N, N), PIX, highpass_A=100.0, lowpass_A=25.0, edge_A_inv=0.004)
    # |k| = 1/25 Å⁻¹ lies at Fourier voxel N·PIX/25 = 10.24: half height at the cut-off
    k = radial_on_grid(torch.tensor([0.0, 0.9]), torch.tensor([0.0, 0.9]), (N, N, N))  # |k| in cycles/voxel
    k_A = k / PIX
    assert float(f[(k_A - 1 / 25).abs() < 0.0005].mean()) == pytest.approx(0.5, abs=0.15)
    assert float(f[k_A > 1 / 25 + 0.003].max()) == 0.0
    assert float(f[k_A < 1 / 100 - 0.003].max()) == 0.0
    assert float(f[(k_A > 0.015) & (k_A < 0.035)].min()) == 1.0


def test_whitening_flattens_a_coloured_spectrum() -> None:
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn((N, N, N), generator=gen)
    shells, _ = radial_profile(noise)
    colour = radial_on_grid(shells, 1.0 / (shells + 0.02), (N, N, N))
    coloured = torch.fft.irfftn(torch.fft.rfftn(noise) * colour, s=(N, N, N))
    k, filt = whitening_filter(coloured)
    white = torch.fft.irfftn(torch.fft.rfftn(coloured) * radial_on_grid(k, filt, (N, N, N)), s=(N, N, N))
    _, before = radial_profile(coloured)
    _, after = radial_profile(white)
    band = (shells > 0.05) & (shells < 0.45)
    assert float(before[band].max() / before[band].min()) > 20.0
    assert float(after[band].max() / after[band].min()) < 1.6
