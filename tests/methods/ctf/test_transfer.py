"""CTF against the textbook formula (PRIMER) and its overall sign."""

import math

import numpy as np
import torch

from tomoforge.methods.ctf.transfer import ctf_1d, ctf_2d, electron_wavelength_A


def test_wavelength_300kv():
    assert abs(electron_wavelength_A(300) - 0.019687) < 1e-5
    assert abs(electron_wavelength_A(200) - 0.025079) < 1e-5


def _textbook(kx, ky, du, dv, ang_deg, kv, cs_mm, a, phase_deg=0.0):
    lam = 12.2643 / math.sqrt(kv * 1e3 * (1 + 0.978466e-6 * kv * 1e3))
    k2 = kx * kx + ky * ky
    theta = math.atan2(ky, kx)
    df = 0.5 * (du + dv + (du - dv) * math.cos(2 * (theta - math.radians(ang_deg))))
    chi = math.pi * lam * df * k2 - 0.5 * math.pi * cs_mm * 1e7 * lam**3 * k2 * k2 + math.radians(phase_deg)
    return -(math.sqrt(1 - a * a) * math.sin(chi) + a * math.cos(chi))


def test_ctf_2d_matches_formula_at_sample_frequencies():
    shape, pix = (64, 80), 1.5
    du, dv, ang, kv, cs, a, ph = 25000.0, 21000.0, 33.0, 300.0, 2.7, 0.1, 20.0
    ctf = ctf_2d(shape, pix, du, dv, ang, voltage_kV=kv, cs_mm=cs, amplitude_contrast=a, phase_shift_deg=ph)
    assert ctf.shape == (64, 41)
    for iy, ix in [(0, 0), (0, 5), (3, 0), (7, 9), (60, 13), (32, 40), (50, 25)]:
        ky = (iy if iy < 32 else iy - 64) / (64 * pix)
        kx = ix / (80 * pix)
        assert abs(float(ctf[iy, ix]) - _textbook(kx, ky, du, dv, ang, kv, cs, a, ph)) < 1e-5


def test_astigmatism_angle_is_angle_of_u_axis():
    # along the U direction the first zero sits at lower frequency than along V
    k = torch.linspace(0.001, 0.05, 2000, dtype=torch.float64)
    ang = math.radians(30.0)
    lam = electron_wavelength_A(300)
    du, dv = 30000.0, 20000.0
    full = ctf_2d((512, 512), 2.0, du, dv, 30.0, cs_mm=0.0, amplitude_contrast=0.0, rfft=False)
    # sample the 2D CTF along the U axis via the formula and compare with 1D at defocus U
    along_u = ctf_1d(k, du, cs_mm=0.0, amplitude_contrast=0.0)
    first_zero_u = float(k[torch.nonzero(along_u > -1e-3)[1]])
    assert abs(first_zero_u - 1 / math.sqrt(lam * du)) < 5e-4
    kx, ky = 1 / math.sqrt(lam * du) * math.cos(ang), 1 / math.sqrt(lam * du) * math.sin(ang)
    ix, iy = round(kx * 1024), round(ky * 1024)
    assert abs(float(full[iy, ix])) < 0.1  # a zero along U
    kxv, kyv = -math.sin(ang) / math.sqrt(lam * du), math.cos(ang) / math.sqrt(lam * du)
    assert abs(float(full[round(kyv * 1024), round(kxv * 1024)])) > 0.3  # not a zero along V


def test_amplitude_contrast_at_zero_frequency():
    assert abs(float(ctf_1d(torch.tensor([0.0]), 20000, amplitude_contrast=0.07)[0]) + 0.07) < 1e-7


def test_underfocused_protein_is_dark():
    """I = 1 + 2 F⁻¹[CTF · F[φ]] with positive φ (protein) at 2 µm underfocus: dark centre."""
    n, pix = 256, 2.0
    y, x = np.mgrid[:n, :n] - n // 2
    phi = torch.tensor(0.05 * np.exp(-(x * x + y * y) / (2 * 8.0**2)), dtype=torch.float32)
    ctf = ctf_2d((n, n), pix, 20000, 20000, 0, voltage_kV=300, cs_mm=2.7, amplitude_contrast=0.07)
    # low-pass to 1/30 Å: "low frequency" appearance
    from tomoforge.methods.fourier import spatial_frequency_2d

    lowpass = (spatial_frequency_2d((n, n), pix) < 1 / 30).float()
    image = 1 + 2 * torch.fft.irfft2(torch.fft.rfft2(phi) * ctf * lowpass, s=(n, n))
    assert float(image[n // 2, n // 2]) < 1 - 0.01
    assert abs(float(image[5, 5]) - 1) < 1e-3
