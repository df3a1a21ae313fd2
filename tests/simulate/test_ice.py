"""The vitreous-ice texture: the structure factor against the Percus–Yevick closed form, and the texture's
power spectrum against the column-averaged CTF² computed by brute force."""

import math

import numpy as np
import pytest
import torch

from tomoforge.methods.ctf.transfer import ctf_2d
from tomoforge.methods.potential import interaction_constant
from tomoforge.simulate.ice import (
    WATER_CONTACT_DIAMETER_A,
    WATER_DENSITY_PER_A3,
    hard_sphere_structure_factor,
    ice_power_spectrum,
    ice_texture_spectrum,
)
from tomoforge.simulate.structures import load_scattering_factors


def test_hard_sphere_structure_factor_limits():
    eta = math.pi * WATER_DENSITY_PER_A3 * WATER_CONTACT_DIAMETER_A**3 / 6
    s = hard_sphere_structure_factor(np.array([0.0, 0.05, 3.0]))
    assert s[0] == pytest.approx((1 - eta) ** 4 / (1 + 2 * eta) ** 2, rel=1e-4)  # compressibility route: 0.057
    assert s[0] == pytest.approx(0.057, abs=0.005)  # liquid water: ρ k T κ_T ≈ 0.06
    assert s[1] < 0.1 and s[2] == pytest.approx(1.0, abs=0.1)


def test_ice_power_spectrum_is_positive_and_rises_towards_the_ice_ring(test_data):
    a, b = load_scattering_factors(test_data)
    p = ice_power_spectrum(np.array([1 / 50, 1 / 10, 1 / 4]), a, b)
    assert (p > 0).all() and p[2] > p[1]


def test_texture_power_matches_the_column_averaged_ctf(test_data):
    """Untilted, 2000 Å of ice at 1 µm defocus: |F|² averaged over rings equals N · (σ/px)² · P · T · ⟨CTF²⟩, with ⟨CTF²⟩ the
    mean of CTF² over 101 heights through the column (the module uses the closed form)."""
    a, b = load_scattering_factors(test_data)
    shape, px, thick = (256, 256), 2.0, 2000.0
    k1 = np.linspace(0, 0.4, 400)
    power = (k1, ice_power_spectrum(k1, a, b))
    sigma = interaction_constant(300.0)
    spectra = [
        ice_texture_spectrum(
            shape,
            px,
            power,
            thick,
            np.array([0.0, 0.0, 1.0]),
            np.zeros(2),
            10100.0,
            9900.0,
            30.0,
            300.0,
            2.7,
            0.07,
            sigma,
            torch.Generator().manual_seed(s),
        )
        for s in range(32)
    ]
    measured = torch.stack([sp.abs() ** 2 for sp in spectra]).mean(0).double()
    heights = np.linspace(-thick / 2, thick / 2, 101)
    ctf2 = torch.stack([ctf_2d(shape, px, 10100.0 + h, 9900.0 + h, 30.0).double() ** 2 for h in heights]).mean(0)
    ky = torch.fft.fftfreq(shape[0], px)[:, None]
    kx = torch.fft.rfftfreq(shape[1], px)[None, :]
    k = torch.sqrt(ky**2 + kx**2)
    p = torch.from_numpy(np.interp(k.numpy(), *power))
    expected = shape[0] * shape[1] * (sigma / px) ** 2 * p * thick * ctf2
    scale = shape[0] * shape[1] * (sigma / px) ** 2 * p * thick  # the texture's power before the CTF
    ring = torch.round(k * shape[0] * px).long()  # one Fourier pixel wide
    diffs, smear = [], []
    for r in range(10, 120, 2):
        sel = ring == r
        level = float(scale[sel].mean())
        diffs.append(abs(float(measured[sel].mean() - expected[sel].mean())) / level)
        without = (ctf_2d(shape, px, 10100.0, 9900.0, 30.0).double() ** 2)[sel]  # the column's centre only
        smear.append(abs(float((scale[sel] * without).mean() - expected[sel].mean())) / level)
    assert max(diffs) < 0.08  # measured 0.039 (sampling noise of 32 draws)
    assert np.sqrt(np.mean(np.square(smear))) > 0.15  # 0.24: the column's thickness fades the rings visibly
