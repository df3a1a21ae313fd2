"""Post-processing of two half maps: soft mask, phase-randomisation-corrected masked FSC, resolution,
Guinier B-factor and sharpening with FSC weighting.

- The automatic mask: the average low-passed (``mask_lowpass_A``), thresholded at a fraction of its
  maximum, grown by ``extend_px`` and given a raised-cosine edge ``soft_edge_px`` wide.
- Chen et al. (2013): the masked FSC of the half maps is inflated by the mask's own correlation; the
  half maps with their phases randomised beyond shell s₀ (the first shell where the unmasked FSC drops
  below 0.8, as RELION) and masked the same give FSC_n, and FSC_true = (FSC_t − FSC_n) / (1 − FSC_n)
  beyond s₀ (FSC_t below).
- Guinier: ln of the rotationally averaged amplitude of the masked average against k² (1/Å²); between
  ``fit_from_A`` and the resolution it is a line of slope −B / 4 (amplitudes fall as exp(−B k² / 4)),
  B in Å². Sharpening multiplies the (unmasked) average by exp(+B k² / 4), the FSC weight √(2 FSC / (1 + FSC)) (Rosenthal &
  Henderson 2003) and nothing beyond the resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tomoforge.methods.fourier import as_tensor
from tomoforge.methods.sta.fsc import (
    GOLD_STANDARD,
    FSCCurve,
    apply_shell_filter,
    half_map_fsc,
    shell_index,
    shell_power,
)

RANDOMISE_BELOW = 0.8


@dataclass(frozen=True)
class PostprocessResult:
    """What ``postprocess`` finds; maps (n³ float32) on the CPU."""

    sharpened: torch.Tensor
    mask: torch.Tensor
    fsc_unmasked: FSCCurve
    fsc_masked: FSCCurve
    fsc_randomised: FSCCurve
    fsc_corrected: FSCCurve
    randomised_from_shell: int
    resolution_A: float
    bfactor_A2: float
    guinier_k2: np.ndarray  # 1/Å², shells used for the plot
    guinier_ln_amplitude: np.ndarray
    guinier_fit_range: tuple[float, float]  # k² limits of the fit (1/Å²)


def soft_edge(binary: torch.Tensor, soft_edge_px: float) -> torch.Tensor:
    """A mask in [0, 1]: 1 inside ``binary``, a raised cosine over ``soft_edge_px`` voxels outside it."""
    from scipy.ndimage import distance_transform_edt

    inside = binary.cpu().numpy().astype(bool)
    distance = distance_transform_edt(~inside)
    if soft_edge_px <= 0:
        return torch.as_tensor(inside.astype(np.float32))
    edge = 0.5 * (1 + np.cos(np.pi * np.clip(distance / soft_edge_px, 0, 1)))
    return torch.as_tensor(np.where(inside, 1.0, edge).astype(np.float32))


def automatic_mask(
    volume: torch.Tensor | np.ndarray,
    pixel_size_A: float,
    *,
    threshold: float = 0.2,
    mask_lowpass_A: float = 15.0,
    extend_px: float = 2.0,
    soft_edge_px: float = 4.0,
) -> torch.Tensor:
    """A soft mask around the density of ``volume`` (n³).

    Parameters
    ----------
    volume : (n, n, n) array
        The average (protein bright).
    pixel_size_A : float
        Voxel size, Å.
    threshold : float
        Fraction of the low-passed map's maximum that is inside.
    mask_lowpass_A : float
        Low-pass (Å) before thresholding (a Gaussian whose amplitude is 1/2 there).
    extend_px, soft_edge_px : float
        Growth of the binary mask and width of its cosine edge, voxels.
    """
    v = as_tensor(volume, torch.float64)
    n = v.shape[0]
    k = shell_index(n, v.device).double() / (n * pixel_size_A)
    smooth = torch.fft.irfftn(torch.fft.rfftn(v) * torch.exp(-np.log(2) * (k * mask_lowpass_A) ** 2), s=v.shape)
    binary = smooth >= threshold * float(smooth.max())
    if extend_px > 0:
        from scipy.ndimage import distance_transform_edt

        binary = torch.as_tensor(distance_transform_edt(~binary.cpu().numpy()) <= extend_px)
    return soft_edge(binary, soft_edge_px)


def randomise_phases(volume: torch.Tensor | np.ndarray, from_shell: int, *, seed: int = 0) -> torch.Tensor:
    """``volume`` (n³) with the phases of every Fourier component beyond ``from_shell`` replaced by
    uniform random ones (amplitudes kept; the rfft grid keeps the map real)."""
    v = as_tensor(volume, torch.float64)
    n = v.shape[0]
    spectrum = torch.fft.rfftn(v)
    generator = torch.Generator().manual_seed(seed)
    # the phases of a real white-noise volume: uniform, and Hermitian where the rfft grid needs it
    noise = torch.fft.rfftn(torch.randn(v.shape, generator=generator, dtype=torch.float64).to(v.device))
    beyond = shell_index(n, v.device) > from_shell
    randomised = torch.where(beyond, spectrum.abs() * torch.exp(1j * torch.angle(noise)), spectrum)
    return torch.fft.irfftn(randomised, s=v.shape).to(torch.float32)


def corrected_fsc(masked: FSCCurve, randomised: FSCCurve, from_shell: int) -> FSCCurve:
    """Chen et al.'s (FSC_t − FSC_n) / (1 − FSC_n) beyond ``from_shell``; FSC_t up to it."""
    t, r = masked.correlation, randomised.correlation
    out = t.copy()
    beyond = np.arange(len(t)) > from_shell
    out[beyond] = (t[beyond] - r[beyond]) / np.maximum(1.0 - r[beyond], 1e-6)
    return FSCCurve(masked.frequency, out)


def guinier_bfactor(
    volume: torch.Tensor | np.ndarray, pixel_size_A: float, *, fit_from_A: float, fit_to_A: float
) -> tuple[float, np.ndarray, np.ndarray]:
    """(B in Å², k² per shell in 1/Å², ln amplitude per shell) of a least-squares line through the Guinier
    plot between ``fit_from_A`` and ``fit_to_A``; amplitudes fall as exp(−B k² / 4)."""
    power = shell_power(volume)
    n = len(power) * 2 - 2
    k = np.arange(len(power)) / (n * pixel_size_A)
    ln_amplitude = 0.5 * np.log(np.maximum(power, 1e-300))
    use = (k >= 1.0 / fit_from_A) & (k <= 1.0 / fit_to_A) & (power > 0)
    if use.sum() < 3:
        raise ValueError(
            f"Guinier fit from {fit_from_A} Å to {fit_to_A} Å holds {int(use.sum())} shells; at least 3 needed"
        )
    slope, _ = np.polyfit(k[use] ** 2, ln_amplitude[use], 1)
    return float(-4.0 * slope), k**2, ln_amplitude


def fsc_weight(fsc: np.ndarray) -> np.ndarray:
    """Rosenthal & Henderson's √(2 FSC / (1 + FSC)) per shell (0 where FSC ≤ 0)."""
    c = np.clip(np.asarray(fsc, dtype=np.float64), 0.0, 1.0)
    return np.sqrt(2 * c / (1 + c))


def postprocess(
    half1: torch.Tensor | np.ndarray,
    half2: torch.Tensor | np.ndarray,
    pixel_size_A: float,
    *,
    mask: torch.Tensor | np.ndarray | None = None,
    bfactor_A2: float | None = None,
    fit_from_A: float = 10.0,
    threshold: float = 0.2,
    extend_px: float = 2.0,
    soft_edge_px: float = 4.0,
    seed: int = 0,
) -> PostprocessResult:
    """Mask, corrected FSC, resolution, B-factor and the sharpened map of two half maps (n³).

    Parameters
    ----------
    half1, half2, pixel_size_A, mask
        As ``fsc.half_map_fsc`` (independent half maps); without a mask, ``automatic_mask`` of the average.
    bfactor_A2 : float, optional
        Sharpen with this B (Å², the decay exp(−B k²/4) undone) instead of the fitted one.
    fit_from_A : float
        Low-resolution end of the Guinier fit (Å); the high end is the resolution.
    threshold, extend_px, soft_edge_px : float
        ``automatic_mask``'s options.
    seed : int
        Of the random phases.
    """
    a = as_tensor(half1, torch.float64).cpu()
    b = as_tensor(half2, torch.float64).cpu()
    average = 0.5 * (a + b)
    n = a.shape[0]
    if mask is None:
        mask_t = automatic_mask(
            average, pixel_size_A, threshold=threshold, extend_px=extend_px, soft_edge_px=soft_edge_px
        )
    else:
        mask_t = as_tensor(mask, torch.float32).cpu()
    unmasked = half_map_fsc(a, b, pixel_size_A)
    masked = half_map_fsc(a, b, pixel_size_A, mask=mask_t)
    below = np.nonzero(unmasked.correlation[1:] < RANDOMISE_BELOW)[0]
    start = int(below[0]) + 1 if len(below) else len(unmasked.correlation) - 1
    randomised = half_map_fsc(
        randomise_phases(a, start, seed=seed), randomise_phases(b, start, seed=seed + 1), pixel_size_A, mask=mask_t
    )
    corrected = corrected_fsc(masked, randomised, start)
    resolution = corrected.resolution_A(GOLD_STANDARD)
    masked_average = average * mask_t.double()
    nyquist = 2 * pixel_size_A
    fit_to = max(resolution, nyquist)
    if bfactor_A2 is None:
        bfactor, k2, ln_amp = guinier_bfactor(masked_average, pixel_size_A, fit_from_A=fit_from_A, fit_to_A=fit_to)
    else:
        bfactor = float(bfactor_A2)
        k2 = (np.arange(n // 2 + 1) / (n * pixel_size_A)) ** 2
        ln_amp = 0.5 * np.log(np.maximum(shell_power(masked_average), 1e-300))
    k = np.sqrt(k2)
    weight = fsc_weight(corrected.correlation) * np.exp(bfactor * k2 / 4.0) * (k <= 1.0 / resolution)
    sharpened = apply_shell_filter(average, weight)
    return PostprocessResult(
        sharpened=sharpened,
        mask=mask_t,
        fsc_unmasked=unmasked,
        fsc_masked=masked,
        fsc_randomised=randomised,
        fsc_corrected=corrected,
        randomised_from_shell=start,
        resolution_A=resolution,
        bfactor_A2=bfactor,
        guinier_k2=k2,
        guinier_ln_amplitude=ln_amp,
        guinier_fit_range=(1.0 / fit_from_A**2, 1.0 / fit_to**2),
    )


__all__ = [
    "PostprocessResult",
    "automatic_mask",
    "corrected_fsc",
    "fsc_weight",
    "guinier_bfactor",
    "postprocess",
    "randomise_phases",
    "soft_edge",
]
