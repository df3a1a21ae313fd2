"""Amorphous-ice scattering: the texture of vitreous ice, which gives a real tilt image most of its Thon rings.

The water molecules of vitreous ice sit at random but not independent positions, so the ice's potential
fluctuates about its mean with the 3D power spectrum

    P(k) = ρ · |V̂_w(k)|² · S(k)        (V²·Å³, k in 1/Å)

with ρ the number density of molecules, V̂_w(k) = C · [f_O(k/2) + 2 f_H(k/2)] the Fourier transform of one
molecule's potential (Peng's 5-Gaussian electron scattering factors, C = h²/(2π m₀ e)) and S(k) the
structure factor of the molecular centres, here that of hard spheres of the O–O contact distance in the
Percus–Yevick approximation (Wertheim 1963; Thiele 1963): its S(0) ≈ 0.06 matches liquid water's
compressibility, and it rises towards the 3.7 Å ring of amorphous ice. A column of ice of length T along
the beam projects to a 2D field of power T · P(k); the column spans heights h ± T/2 and so defoci, and the
average of CTF² over that range is, with χ the phase at the column's centre and sin α the amplitude contrast,

    ⟨CTF²⟩ = ½ [1 − cos(2χ + 2α) · sinc(π λ k² T)]

(the rings fade where the column's thickness spans half a ring). In a tilted image the column's centre
height changes across the field, so the texture is drawn once per tilt as white noise and filtered for a
few heights along that gradient (``strip_A`` apart), blended linearly between them.

Simplifications, on purpose: the texture is drawn anew for each tilt (a specimen's ice is one 3D object,
but below ~10 Å, where the texture matters, it is noise to every downstream step); it is not attenuated
by exposure (vitreous ice stays amorphous under the beam, and real late tilts keep their ice rings); it
appears in the recorded frames only, not in the noise-free stacks, which hold the objects whose truth is
known.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import torch
from scipy.integrate import trapezoid

from tomoforge.methods.ctf.transfer import astigmatic_defocus, ctf_phase, electron_wavelength_A
from tomoforge.methods.fourier import frequency_grid_2d
from tomoforge.methods.potential import POTENTIAL_CONSTANT_V_A2

WATER_DENSITY_PER_A3 = 0.0314  # vitreous ice, 0.94 g/cm³
WATER_CONTACT_DIAMETER_A = 2.8  # O–O distance of hydrogen-bonded neighbours


def hard_sphere_structure_factor(
    k_A: np.ndarray, density_per_A3: float = WATER_DENSITY_PER_A3, diameter_A: float = WATER_CONTACT_DIAMETER_A
) -> np.ndarray:
    """S(k) of hard spheres in the Percus–Yevick approximation at spatial frequencies ``k_A`` (1/Å; the
    scattering vector is q = 2πk): S = 1 / (1 − ρ ĉ(q)), ĉ the transform of the direct correlation
    function c(r) = −[λ₁ + 6ηλ₂ r/d + ½ηλ₁ (r/d)³] inside the sphere (Wertheim 1963)."""
    d = diameter_A
    eta = math.pi * density_per_A3 * d**3 / 6
    l1 = (1 + 2 * eta) ** 2 / (1 - eta) ** 4
    l2 = -((1 + eta / 2) ** 2) / (1 - eta) ** 4
    r = np.linspace(0.0, d, 801)
    c = -(l1 + 6 * eta * l2 * (r / d) + 0.5 * eta * l1 * (r / d) ** 3)
    qr = 2 * math.pi * np.outer(np.asarray(k_A, dtype=float).ravel(), r)
    c_hat = 4 * math.pi * trapezoid(c * r * r * np.sinc(qr / math.pi), r, axis=1)
    return (1.0 / (1.0 - density_per_A3 * c_hat)).reshape(np.shape(k_A))


def ice_power_spectrum(
    k_A: np.ndarray,
    params_a: dict[str, list[float]],
    params_b: dict[str, list[float]],
    density_per_A3: float = WATER_DENSITY_PER_A3,
    diameter_A: float = WATER_CONTACT_DIAMETER_A,
) -> np.ndarray:
    """P(k) = ρ |V̂_w(k)|² S(k) (V²·Å³) of vitreous ice at ``k_A`` (1/Å); ``params_a``/``params_b``: the
    5-Gaussian electron scattering factors (Å, Å²) by element."""
    s2 = (np.asarray(k_A, dtype=float) / 2) ** 2

    def f(element: str) -> np.ndarray:
        return cast(np.ndarray, sum(a * np.exp(-b * s2) for a, b in zip(params_a[element], params_b[element])))

    molecule = POTENTIAL_CONSTANT_V_A2 * (f("O") + 2 * f("H"))
    return density_per_A3 * molecule**2 * hard_sphere_structure_factor(k_A, density_per_A3, diameter_A)


def ice_texture_spectrum(
    shape: tuple[int, int],
    pixel_size_A: float,
    power: tuple[np.ndarray, np.ndarray],
    thickness_A: float,
    beam_normal: np.ndarray,
    shift_A: np.ndarray,
    defocus_u_A: float,
    defocus_v_A: float,
    astigmatism_angle_deg: float,
    voltage_kV: float,
    cs_mm: float,
    amplitude_contrast: float,
    interaction: float,
    generator: torch.Generator,
    strip_A: float = 250.0,
) -> torch.Tensor:
    """rfft (y, x//2+1) of the ice texture's phase after the CTF (the term added to the objects' CTF-filtered
    phase), for one tilt image.

    ``power``: (k 1/Å, P(k) V²·Å³) from ``ice_power_spectrum``; ``thickness_A``: of the ice slab along its
    normal; ``beam_normal``: the slab normal in the image frame (projection matrix @ normal: x, y, height);
    ``shift_A``: where the specimen centre projects (XShift, YShift); ``interaction``: σ (rad / V·Å)."""
    ny, nx = shape
    g = np.asarray(beam_normal, dtype=float)
    if abs(g[2]) < 1e-3:
        raise ValueError("the beam runs along the ice slab: its column length is unbounded")
    column_A = thickness_A / abs(g[2])
    # height of the column's centre at each pixel: g · (x, y, h) = 0
    y = (torch.arange(ny, dtype=torch.float64) - ny // 2) * pixel_size_A - float(shift_A[1])
    x = (torch.arange(nx, dtype=torch.float64) - nx // 2) * pixel_size_A - float(shift_A[0])
    height = -(g[0] * x[None, :] + g[1] * y[:, None]) / g[2]
    lo, hi = float(height.min()), float(height.max())
    nodes = np.linspace(lo, hi, int(math.ceil((hi - lo) / strip_A)) + 1) if hi - lo > 1.0 else np.array([lo])
    step = nodes[1] - nodes[0] if len(nodes) > 1 else math.inf

    ky, kx = frequency_grid_2d(shape, pixel_size_A, True)
    ky, kx = ky.to(torch.float64), kx.to(torch.float64)
    k = torch.sqrt(ky * ky + kx * kx)
    p = torch.from_numpy(np.interp(k.numpy(), power[0], power[1]))
    defocus = astigmatic_defocus(ky, kx, defocus_u_A, defocus_v_A, astigmatism_angle_deg)
    alpha = math.asin(amplitude_contrast)
    lam = electron_wavelength_A(voltage_kV)
    smear = torch.special.sinc(lam * k * k * column_A)  # torch's sinc(x) = sin(πx) / (πx)
    scale = interaction / pixel_size_A  # white noise of unit variance → field of power P·T (discrete grid)
    white = torch.fft.rfft2(torch.randn(shape, generator=generator, dtype=torch.float32))
    field = torch.zeros(shape, dtype=torch.float32)
    for h in nodes:
        chi = ctf_phase(k, defocus + h, voltage_kV, cs_mm)
        mean_ctf2 = 0.5 * (1 - torch.cos(2 * chi + 2 * alpha) * smear)
        amplitude = (scale * torch.sqrt(p * column_A * mean_ctf2)).to(torch.float32)
        weight = (1 - (height - h).abs() / step).clamp(min=0).to(torch.float32)
        field += weight * torch.fft.irfft2(white * amplitude, s=shape)
    return torch.fft.rfft2(field)


__all__ = [
    "hard_sphere_structure_factor",
    "ice_power_spectrum",
    "ice_texture_spectrum",
    "WATER_DENSITY_PER_A3",
    "WATER_CONTACT_DIAMETER_A",
]
