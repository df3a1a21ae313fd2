"""Resizing a reference map: rescale to a pixel size, crop/pad to a box, low-pass, invert, recentre.

Volumes are (z, y, x) float32 tensors (numpy accepted), centre at voxel N // 2 on each axis (conventions.md).
Every function takes a ``device`` (None: the input's, CPU for numpy) and returns a tensor on it.

- Rescaling crops (coarser) or zero-pads (finer) the centred spectrum (``fourier.fourier_crop``), the
  classic Fourier resampling that keeps every frequency both samplings share (then a sub-voxel shift keeps
  the centre voxel N // 2 at the new N // 2: the resampling itself keeps index 0). The new box is
  ``n' = round(n · p / p_target)``; the pixel size reached is ``p · n / n'``. To reach ``p_target`` closely
  the map is first padded (with the mean of its outer faces) to the size ``m ≥ n`` for which ``m · p / p_target``
  is nearest a whole number (within ``max_pad_fraction`` of n), then the result is cropped back to
  ``round(n · p / p_target)``.
- The low-pass is a raised cosine in |k|: 1 below ``k_c − w/2``, ``½(1 + cos(π (|k| − k_c + w/2) / w))`` up to
  ``k_c + w/2``, 0 above, with ``k_c = 1 / resolution_A`` and w the ``falloff`` in Fourier voxels (its value at
  the cut-off is ½).
- Recentring moves the centre of mass of the map's density (above the mean of its outer faces by more than 3
  of their standard deviations) to voxel N // 2 by a Fourier phase ramp: the integer and the sub-pixel part of the shift at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from tomoforge.methods.fourier import as_tensor, fourier_crop, frequency_grid_3d, phase_ramp_3d


def _volume(volume: torch.Tensor | npt.ArrayLike, device: torch.device | str | None) -> torch.Tensor:
    v = as_tensor(volume, torch.float32, device)
    if v.ndim != 3:
        raise ValueError(f"a volume is (z, y, x), got shape {tuple(v.shape)}")
    return v


def _faces(volume: torch.Tensor) -> torch.Tensor:
    """The voxels of the six outer faces of a (z, y, x) volume, flat."""
    faces = [volume[0], volume[-1], volume[:, 0], volume[:, -1], volume[:, :, 0], volume[:, :, -1]]
    return torch.cat([f.reshape(-1) for f in faces])


def edge_mean(volume: torch.Tensor) -> float:
    """Mean of the six outer faces of a (z, y, x) volume: its background level."""
    return float(_faces(volume).to(torch.float64).mean())


def crop_or_pad(
    volume: torch.Tensor | npt.ArrayLike,
    box: tuple[int, int, int],
    *,
    fill: float | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The volume cut or padded to ``box`` (z, y, x voxels), keeping voxel N // 2 at the new N // 2.

    Parameters
    ----------
    volume : (z, y, x) array
        The map.
    box : tuple of 3 int
        The new size (voxels, ≥ 1 each); an axis may shrink while another grows.
    fill : float, optional
        Value of the added voxels (None: the mean of the map's outer faces).
    device : torch device, optional
        Where to compute (None: the input's).

    Returns
    -------
    torch.Tensor
        (box) float32.
    """
    v = _volume(volume, device)
    if any(int(b) < 1 for b in box):
        raise ValueError(f"a box is at least 1 voxel on each axis, got {box}")
    value = edge_mean(v) if fill is None else float(fill)
    out = torch.full(tuple(int(b) for b in box), value, dtype=torch.float32, device=v.device)
    src, dst = [], []
    for old, new in zip(v.shape, box):
        m = min(old, int(new))
        src.append(slice(old // 2 - m // 2, old // 2 - m // 2 + m))
        dst.append(slice(int(new) // 2 - m // 2, int(new) // 2 - m // 2 + m))
    out[tuple(dst)] = v[tuple(src)]
    return out


@dataclass(frozen=True)
class Rescaled:
    """A rescaled map and the pixel size it reached (Å/voxel)."""

    volume: torch.Tensor
    pixel_size_A: float


def _padded_size(n: int, ratio: float, max_pad_fraction: float) -> int:
    """The size m in [n, n (1 + max_pad_fraction)] whose m · ratio is nearest a whole number (smallest m first)."""
    candidates = np.arange(n, int(n * (1 + max_pad_fraction)) + 1)
    scaled = candidates * ratio
    miss = np.abs(scaled - np.round(scaled)) / np.maximum(scaled, 1.0)
    return int(candidates[int(np.argmin(miss))])


def rescale_volume(
    volume: torch.Tensor | npt.ArrayLike,
    pixel_size_A: float,
    target_pixel_size_A: float,
    *,
    max_pad_fraction: float = 0.5,
    device: torch.device | str | None = None,
) -> Rescaled:
    """Resample a cubic or any (z, y, x) map to ``target_pixel_size_A`` by cropping or padding its spectrum.

    Parameters
    ----------
    volume : (z, y, x) array
        The map, sampled at ``pixel_size_A``.
    pixel_size_A : float
        Its voxel size (Å, > 0).
    target_pixel_size_A : float
        The wanted voxel size (Å, > 0); coarser crops the spectrum (no aliasing), finer zero-pads it.
    max_pad_fraction : float
        How much larger (fraction of each axis) the map may be padded to reach the target closely; 0 keeps
        the box and takes the pixel size ``p · n / round(n · p / p_target)`` of the first axis.
    device : torch device, optional
        Where to compute (None: the input's).

    Returns
    -------
    Rescaled
        ``volume``: (round(n · p / p_target) per axis) float32, values on the same scale (a constant map
        stays that constant); ``pixel_size_A``: the voxel size reached, along x.
    """
    if not (pixel_size_A > 0 and target_pixel_size_A > 0):
        raise ValueError(f"pixel sizes must be > 0 Å, got {pixel_size_A} and {target_pixel_size_A}")
    v = _volume(volume, device)
    ratio = pixel_size_A / target_pixel_size_A
    final = tuple(max(1, int(round(n * ratio))) for n in v.shape)
    padded = tuple(_padded_size(n, ratio, max_pad_fraction) for n in v.shape)
    if padded != tuple(v.shape):
        v = crop_or_pad(v, padded)  # type: ignore[arg-type]
    new = tuple(max(1, int(round(n * ratio))) for n in v.shape)
    out = fourier_crop(v, new)
    # Fourier resampling keeps index 0 in place: the old centre N // 2 lands at (N // 2) · n' / N; move it to n' // 2
    offset = tuple(m // 2 - (n // 2) * m / n for n, m in zip(v.shape, new))
    if any(abs(o) > 1e-9 for o in offset):
        out = shift_volume(out, offset)  # type: ignore[arg-type]
    reached = pixel_size_A * v.shape[-1] / new[-1]
    if new != final:
        out = crop_or_pad(out, final)  # type: ignore[arg-type]
    return Rescaled(out.contiguous(), float(reached))


def lowpass_filter(
    shape: tuple[int, int, int],
    pixel_size_A: float,
    resolution_A: float,
    *,
    falloff: float = 2.0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The raised-cosine low-pass on the rfftn grid of ``shape`` (z, y, x): ½ at 1 / ``resolution_A``.

    Parameters
    ----------
    shape : tuple of 3 int
        The volume's size (voxels).
    pixel_size_A : float
        Its voxel size (Å).
    resolution_A : float
        The cut-off (Å): the filter is ½ at |k| = 1 / resolution_A.
    falloff : float
        Width of the cosine edge in Fourier voxels (of the largest axis); 0 gives a hard cut (1 up to and
        including the cut-off's voxel below it, 0 above).
    device : torch device, optional
        Where the grid is made.

    Returns
    -------
    torch.Tensor
        (z, y, x // 2 + 1) float32 in [0, 1].
    """
    if resolution_A <= 0:
        raise ValueError(f"a low-pass resolution must be > 0 Å, got {resolution_A}")
    kz, ky, kx = frequency_grid_3d(shape, pixel_size_A, True, device)
    k = torch.sqrt(kz * kz + ky * ky + kx * kx)
    kc = 1.0 / resolution_A
    width = falloff / (max(shape) * pixel_size_A)
    if width <= 0:
        return (k <= kc).to(torch.float32)
    t = torch.clamp((k - kc + width / 2) / width, 0.0, 1.0)
    return (0.5 * (1 + torch.cos(torch.pi * t))).to(torch.float32)


def lowpass_volume(
    volume: torch.Tensor | npt.ArrayLike,
    pixel_size_A: float,
    resolution_A: float,
    *,
    falloff: float = 2.0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The map low-passed by ``lowpass_filter`` (the mean is kept); (z, y, x) float32."""
    v = _volume(volume, device)
    h = lowpass_filter(tuple(v.shape), pixel_size_A, resolution_A, falloff=falloff, device=v.device)  # type: ignore[arg-type]
    return torch.fft.irfftn(torch.fft.rfftn(v) * h, s=tuple(v.shape))


def invert_volume(volume: torch.Tensor | npt.ArrayLike, *, device: torch.device | str | None = None) -> torch.Tensor:
    """The map with its contrast inverted (−v): a reference of dark protein made bright, as maps are."""
    return -_volume(volume, device)


def centre_of_mass(
    volume: torch.Tensor | npt.ArrayLike, *, noise_sd: float = 3.0, device: torch.device | str | None = None
) -> torch.Tensor:
    """(z, y, x) voxel index of the centre of mass of the map's density above its background.

    The background is the outer faces' mean; only voxels more than ``noise_sd`` standard deviations of the
    faces above it weigh (by their height above the background), so that the noise of an empty box does
    not pull the centre towards the box's.

    Raises ValueError for a map with no density above its background.
    """
    v = _volume(volume, device).to(torch.float64)
    faces = _faces(v)
    above = v - faces.mean()
    w = torch.where(above > noise_sd * faces.std(), above, torch.zeros_like(above))
    total = w.sum()
    if not total > 0:
        raise ValueError("the map has no density above its background: nothing to centre")
    axes = [torch.arange(n, dtype=torch.float64, device=v.device) for n in v.shape]
    return torch.stack(
        [
            (w.sum(dim=(1, 2)) * axes[0]).sum() / total,
            (w.sum(dim=(0, 2)) * axes[1]).sum() / total,
            (w.sum(dim=(0, 1)) * axes[2]).sum() / total,
        ]
    )


def shift_volume(
    volume: torch.Tensor | npt.ArrayLike,
    shift_zyx: tuple[float, float, float],
    *,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The map translated by ``shift_zyx`` voxels (periodic, sub-voxel exact by a Fourier phase ramp)."""
    v = _volume(volume, device)
    ramp = phase_ramp_3d(tuple(v.shape), shift_zyx, v.device)  # type: ignore[arg-type]
    return torch.fft.irfftn(torch.fft.rfftn(v) * ramp, s=tuple(v.shape))


def recentre_volume(
    volume: torch.Tensor | npt.ArrayLike, *, iterations: int = 2, device: torch.device | str | None = None
) -> tuple[torch.Tensor, tuple[float, float, float]]:
    """The map with its centre of mass moved to voxel N // 2, and the shift applied (z, y, x voxels).

    The centre of mass is measured again after each shift (``iterations`` times): the background level that
    weights it depends a little on where the density sits.
    """
    v = _volume(volume, device)
    total = np.zeros(3)
    centre = np.array([n // 2 for n in v.shape], dtype=float)
    for _ in range(max(1, iterations)):
        shift = centre - centre_of_mass(v).cpu().numpy()
        v = shift_volume(v, (float(shift[0]), float(shift[1]), float(shift[2])))
        total += shift
    return v, (float(total[0]), float(total[1]), float(total[2]))
