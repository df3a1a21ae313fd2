"""Radiation damage: Grant & Grigorieff (2015) critical exposure and exposure filter.

N_e(k) = a · k^b + c e/Å² with a = 0.245, b = −1.665, c = 2.81 (k in 1/Å, measured at 300 kV);
a tilt with accumulated exposure N (e/Å²) keeps amplitude q(k) = exp(−N / (2 N_e(k))).
"""

from __future__ import annotations

import torch

from tomoforge.methods.fourier import as_tensor, spatial_frequency_2d

GRANT_GRIGORIEFF_A = 0.245
GRANT_GRIGORIEFF_B = -1.665
GRANT_GRIGORIEFF_C = 2.81


def critical_exposure(k: torch.Tensor, voltage_kV: float = 300.0) -> torch.Tensor:
    """Critical exposure N_e(k) in e/Å² at spatial frequency ``k`` (1/Å); ×0.8 at 200 kV as in unblur."""
    k = as_tensor(k, torch.float64)
    scale = 0.8 if voltage_kV < 250 else 1.0
    ne = GRANT_GRIGORIEFF_A * torch.clamp(k, min=1e-12) ** GRANT_GRIGORIEFF_B + GRANT_GRIGORIEFF_C
    return ne * scale


def exposure_attenuation(k: torch.Tensor, exposure_e_per_A2: float, voltage_kV: float = 300.0) -> torch.Tensor:
    """Amplitude kept at frequency ``k`` (1/Å) after ``exposure_e_per_A2``: exp(−N / (2 N_e(k)))."""
    return torch.exp(-exposure_e_per_A2 / (2 * critical_exposure(k, voltage_kV)))


def exposure_filter_2d(
    shape: tuple[int, int],
    pixel_size_A: float,
    exposure_e_per_A2: float,
    voltage_kV: float = 300.0,
    rfft: bool = True,
    device=None,
) -> torch.Tensor:
    """The exposure attenuation q(k) on the (r)fft grid of an image of ``shape`` (float32)."""
    k = spatial_frequency_2d(shape, pixel_size_A, rfft, device).to(torch.float64)
    return exposure_attenuation(k, exposure_e_per_A2, voltage_kV).to(torch.float32)


def filter_by_exposure(
    images: torch.Tensor, exposures_e_per_A2, pixel_size_A: float, voltage_kV: float = 300.0
) -> torch.Tensor:
    """Stack (n, y, x) with image i's spectrum multiplied by q(k) for its accumulated exposure."""
    images = as_tensor(images)
    ny, nx = images.shape[-2:]
    spectra = torch.fft.rfft2(images)
    filters = torch.stack(
        [
            exposure_filter_2d((ny, nx), pixel_size_A, float(e), voltage_kV, device=images.device)
            for e in torch.as_tensor(exposures_e_per_A2).reshape(-1)
        ]
    )
    return torch.fft.irfft2(spectra * filters, s=(ny, nx))
