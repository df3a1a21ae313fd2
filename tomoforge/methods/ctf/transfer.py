"""Contrast transfer function (CTFFIND/RELION conventions; PRIMER formulas).

Defocus in Å, positive = underfocus, DefocusU ≥ DefocusV, astigmatism angle (degrees) = angle of the
U axis from the image X axis; Cs in mm; voltage in kV; amplitude contrast as a fraction; phase shift
in degrees. Sign: CTF = −[√(1 − A²) sin χ + A cos χ], so an underfocused protein (positive potential)
images dark at low frequency when the image is formed as I = 1 + 2 · F⁻¹[CTF · F[φ]].
"""

from __future__ import annotations

import math

import torch

from tomoforge.methods.ctf.settings import Optics
from tomoforge.methods.fourier import frequency_grid_2d

_MICROSCOPE = Optics()  # the default microscope constants


def electron_wavelength_A(voltage_kV: float) -> float:
    """Relativistic electron wavelength in Å: 12.2643 / sqrt(V (1 + 0.978466e-6 V)), V in volts."""
    v = voltage_kV * 1e3
    return 12.2643 / math.sqrt(v * (1 + 0.978466e-6 * v))


def ctf_phase(
    k: torch.Tensor, defocus_A: torch.Tensor | float, voltage_kV: float, cs_mm: float, phase_shift_deg: float = 0.0
) -> torch.Tensor:
    """χ(k) = π λ Δf k² − (π/2) Cs λ³ k⁴ + φ (radians), k in 1/Å, Δf in Å (may be a tensor like k)."""
    lam = electron_wavelength_A(voltage_kV)
    cs = cs_mm * 1e7
    k2 = k * k
    return math.pi * lam * defocus_A * k2 - 0.5 * math.pi * cs * lam**3 * k2 * k2 + math.radians(phase_shift_deg)


def ctf_from_phase(chi: torch.Tensor, amplitude_contrast: float) -> torch.Tensor:
    """CTF = −[√(1 − A²) sin χ + A cos χ]."""
    a = amplitude_contrast
    return -(math.sqrt(1 - a * a) * torch.sin(chi) + a * torch.cos(chi))


def astigmatic_defocus(
    ky: torch.Tensor, kx: torch.Tensor, defocus_u_A: float, defocus_v_A: float, astigmatism_angle_deg: float
) -> torch.Tensor:
    """Δf(θ) = ½ [ΔfU + ΔfV + (ΔfU − ΔfV) cos 2(θ − θ_ast)] at each frequency (Å)."""
    theta = torch.atan2(ky, kx)
    return 0.5 * (
        defocus_u_A
        + defocus_v_A
        + (defocus_u_A - defocus_v_A) * torch.cos(2 * (theta - math.radians(astigmatism_angle_deg)))
    )


def ctf_1d(
    k: torch.Tensor,
    defocus_A: float,
    *,
    voltage_kV: float = _MICROSCOPE.voltage_kV,
    cs_mm: float = _MICROSCOPE.cs_mm,
    amplitude_contrast: float = _MICROSCOPE.amplitude_contrast,
    phase_shift_deg: float = 0.0,
) -> torch.Tensor:
    """Rotationally averaged (non-astigmatic) CTF.

    Parameters
    ----------
    k : torch.Tensor
        Spatial frequencies (any shape), 1/Å.
    defocus_A : float
        Defocus, Å (positive = underfocus).
    voltage_kV, cs_mm, amplitude_contrast : float
        Microscope constants (kV, mm, fraction); default ``settings.Optics()``.
    phase_shift_deg : float
        Phase plate shift, degrees.

    Returns
    -------
    torch.Tensor
        The CTF at ``k`` (same shape and dtype).
    """
    return ctf_from_phase(ctf_phase(k, defocus_A, voltage_kV, cs_mm, phase_shift_deg), amplitude_contrast)


def ctf_2d(
    shape: tuple[int, int],
    pixel_size_A: float,
    defocus_u_A: float,
    defocus_v_A: float,
    astigmatism_angle_deg: float = 0.0,
    *,
    voltage_kV: float = _MICROSCOPE.voltage_kV,
    cs_mm: float = _MICROSCOPE.cs_mm,
    amplitude_contrast: float = _MICROSCOPE.amplitude_contrast,
    phase_shift_deg: float = 0.0,
    rfft: bool = True,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The CTF on the Fourier grid of an image.

    Parameters
    ----------
    shape : tuple of int
        Image size (y, x), px.
    pixel_size_A : float
        Pixel size, Å.
    defocus_u_A, defocus_v_A : float
        Defocus along the U and V axes, Å (U ≥ V, positive = underfocus).
    astigmatism_angle_deg : float
        Angle of the U axis from the image X axis, degrees.
    voltage_kV, cs_mm, amplitude_contrast : float
        Microscope constants (kV, mm, fraction); default ``settings.Optics()``.
    phase_shift_deg : float
        Phase plate shift, degrees.
    rfft : bool
        The half grid of ``rfft2`` (y, x // 2 + 1), else the full ``fft2`` grid (y, x).
    device : torch.device or str, optional
        Where the result lives (default CPU).

    Returns
    -------
    torch.Tensor
        float32 CTF on that grid.
    """
    if defocus_u_A < defocus_v_A:
        raise ValueError(f"defocus_u_A ({defocus_u_A}) must be >= defocus_v_A ({defocus_v_A})")
    ky, kx = frequency_grid_2d(shape, pixel_size_A, rfft, device)
    ky, kx = ky.to(torch.float64), kx.to(torch.float64)
    dfz = astigmatic_defocus(ky, kx, defocus_u_A, defocus_v_A, astigmatism_angle_deg)
    chi = ctf_phase(torch.sqrt(ky * ky + kx * kx), dfz, voltage_kV, cs_mm, phase_shift_deg)
    return ctf_from_phase(chi, amplitude_contrast).to(torch.float32)


__all__ = ["astigmatic_defocus", "ctf_1d", "ctf_2d", "ctf_from_phase", "ctf_phase", "electron_wavelength_A"]
