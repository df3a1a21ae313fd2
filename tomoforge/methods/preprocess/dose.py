"""Radiation damage: Grant & Grigorieff (2015) critical exposure and exposure filter.

N_e(k) = a · k^b + c e/Å² with a = 0.245, b = −1.665, c = 2.81 (k in 1/Å, measured at 300 kV);
a tilt with accumulated exposure N (e/Å²) keeps amplitude q(k) = exp(−N / (2 N_e(k))).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from tomoforge.methods.fourier import as_tensor, spatial_frequency_2d

GRANT_GRIGORIEFF_A = 0.245
GRANT_GRIGORIEFF_B = -1.665
GRANT_GRIGORIEFF_C = 2.81


def critical_exposure(k: torch.Tensor | float, *, voltage_kV: float = 300.0) -> torch.Tensor:
    """Critical exposure N_e(k) of Grant & Grigorieff (2015).

    Parameters
    ----------
    k : torch.Tensor or float, any shape
        Spatial frequency (1/Å).
    voltage_kV : float
        Acceleration voltage (kV): below 250 kV, N_e × 0.8 (as in unblur).

    Returns
    -------
    torch.Tensor, float64, shaped as ``k``
        N_e(k) in e/Å².
    """
    k = as_tensor(k, torch.float64)
    scale = 0.8 if voltage_kV < 250 else 1.0
    ne = GRANT_GRIGORIEFF_A * torch.clamp(k, min=1e-12) ** GRANT_GRIGORIEFF_B + GRANT_GRIGORIEFF_C
    return ne * scale


def exposure_attenuation(
    k: torch.Tensor | float, exposure_e_per_A2: float, *, voltage_kV: float = 300.0
) -> torch.Tensor:
    """Amplitude kept after an exposure: q(k) = exp(−N / (2 N_e(k))).

    Parameters
    ----------
    k : torch.Tensor or float, any shape
        Spatial frequency (1/Å).
    exposure_e_per_A2 : float
        Accumulated exposure N (e/Å²).
    voltage_kV : float
        Acceleration voltage (kV).

    Returns
    -------
    torch.Tensor, float64, shaped as ``k``
        q(k), in (0, 1].
    """
    return torch.exp(-exposure_e_per_A2 / (2 * critical_exposure(k, voltage_kV=voltage_kV)))


def exposure_filter_2d(
    shape: tuple[int, int],
    pixel_size_A: float,
    exposure_e_per_A2: float,
    *,
    voltage_kV: float = 300.0,
    rfft: bool = True,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The exposure attenuation q(k) on the (r)fft grid of an image.

    Parameters
    ----------
    shape : (int, int)
        Image size (y, x) in pixels.
    pixel_size_A : float
        Pixel size (Å).
    exposure_e_per_A2 : float
        Accumulated exposure (e/Å²).
    voltage_kV : float
        Acceleration voltage (kV).
    rfft : bool
        The rfft grid (y, x // 2 + 1), else the full fft grid (y, x).
    device : torch.device, str or None
        Where the filter is made.

    Returns
    -------
    torch.Tensor, float32, (y, x // 2 + 1) or (y, x)
        q(k), DC at index 0.
    """
    k = spatial_frequency_2d(shape, pixel_size_A, rfft, device).to(torch.float64)
    return exposure_attenuation(k, exposure_e_per_A2, voltage_kV=voltage_kV).to(torch.float32)


def filter_by_exposure(
    images: torch.Tensor | np.ndarray,
    exposures_e_per_A2: Sequence[float] | torch.Tensor | np.ndarray,
    pixel_size_A: float,
    *,
    voltage_kV: float = 300.0,
) -> torch.Tensor:
    """Images with each one's spectrum multiplied by q(k) for its accumulated exposure.

    Parameters
    ----------
    images : torch.Tensor or numpy.ndarray, (n, y, x)
        Images in any unit; a tensor stays on its device.
    exposures_e_per_A2 : sequence of float, (n,)
        Accumulated exposure of each image (e/Å²).
    pixel_size_A : float
        Pixel size (Å).
    voltage_kV : float
        Acceleration voltage (kV).

    Returns
    -------
    torch.Tensor, float32, (n, y, x)
        The filtered images, in the unit of ``images`` (the mean is kept: q(0) = 1).
    """
    images = as_tensor(images)
    ny, nx = images.shape[-2:]
    spectra = torch.fft.rfft2(images)
    filters = torch.stack(
        [
            exposure_filter_2d((ny, nx), pixel_size_A, float(e), voltage_kV=voltage_kV, device=images.device)
            for e in torch.as_tensor(exposures_e_per_A2).reshape(-1)
        ]
    )
    return torch.fft.irfft2(spectra * filters, s=(ny, nx))
