"""Fourier-crop binning by any factor ≥ 1, normalisation and contrast inversion of images.

Fourier cropping keeps every frequency below the new Nyquist exactly and drops the rest, so a
band-limited image binned by b equals the same image sampled every b pixels: no aliasing, and no
shift (pixel j of the binned image sits where pixel j·b of the original sat).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from tomoforge.methods.fourier import as_tensor, fourier_crop

Normalise = Literal["none", "mean", "standardise"]


def binned_shape(shape: tuple[int, int], factor: float) -> tuple[int, int]:
    """(y, x) size after binning by ``factor``: round(n / factor), at least 1."""
    if factor < 1:
        raise ValueError(f"binning factor must be ≥ 1, got {factor}")
    return tuple(max(1, int(round(n / factor))) for n in shape)  # type: ignore[return-value]


def binned_pixel_size(pixel_size_A: float, shape: tuple[int, int], factor: float) -> float:
    """Pixel size (Å/px) after binning: pixel × nx / new nx (= pixel × factor when nx / factor is whole)."""
    return pixel_size_A * shape[-1] / binned_shape(shape, factor)[-1]


def bin_images(images: torch.Tensor | np.ndarray, factor: float) -> torch.Tensor:
    """Images (..., y, x) binned by ``factor`` ≥ 1 through Fourier cropping; the mean is kept."""
    x = as_tensor(images)
    if factor == 1:
        return x.clone()
    return fourier_crop(x, binned_shape((x.shape[-2], x.shape[-1]), factor))


def normalise_images(images: torch.Tensor | np.ndarray, mode: Normalise = "standardise") -> torch.Tensor:
    """Per image: ``mean`` subtracts the mean; ``standardise`` → mean 0, standard deviation 1."""
    x = as_tensor(images)
    if mode == "none":
        return x
    mean = x.mean(dim=(-2, -1), keepdim=True)
    if mode == "mean":
        return x - mean
    if mode == "standardise":
        std = x.std(dim=(-2, -1), keepdim=True)
        return (x - mean) / torch.where(std > 0, std, torch.ones_like(std))
    raise ValueError(f"normalisation must be none, mean or standardise, got {mode!r}")


def invert_contrast(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Contrast inverted about each image's mean (dark protein becomes bright; mean kept)."""
    x = as_tensor(images)
    mean = x.mean(dim=(-2, -1), keepdim=True)
    return 2 * mean - x


def preprocess_images(
    images: torch.Tensor | np.ndarray, *, factor: float, normalise: Normalise, invert: bool
) -> torch.Tensor:
    """Bin, then invert, then normalise images (the order of IMOD newstack / RELION preprocess).

    Parameters
    ----------
    images : torch.Tensor or numpy.ndarray, (..., y, x)
        Images in any unit; a tensor stays on its device.
    factor : float
        Binning factor ≥ 1 (pixel size × factor; Fourier cropping, the mean kept).
    normalise : {"none", "mean", "standardise"}
        Per image: nothing, subtract the mean, or scale to mean 0 and standard deviation 1.
    invert : bool
        Invert the contrast about each image's mean first.

    Returns
    -------
    torch.Tensor, float32, (..., round(y / factor), round(x / factor))
        The images, in the unit of ``images`` (unless standardised).
    """
    x = bin_images(images, factor)
    if invert:
        x = invert_contrast(x)
    return normalise_images(x, normalise)
