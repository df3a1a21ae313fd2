"""Map-back: an average placed at every particle's position and orientation in a tomogram-sized volume.

Each particle p contributes map(R_pᵀ (x − X_p)) (x_tomo = R x_ref + X, docs/conventions.md): the average,
resampled to the tomogram's voxel (Fourier cropping or padding; the exact voxel is
``extraction.source_box``'s), zero-padded to twice its box, its spectrum sampled at R_pᵀ k (trilinear, with
the gridding correction of ``averaging``) and shifted by the particle's sub-voxel offset, then added into the
volume at the particle's whole voxel (X_p / p + N // 2); what falls outside the volume is dropped.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numpy.typing import ArrayLike

from tomoforge.methods.fourier import as_tensor, fourier_crop
from tomoforge.methods.sta.averaging import (
    centred_grid,
    centred_spectrum,
    centred_to_volume,
    sample_centred,
    trilinear_apodisation,
)


def map_back(
    average: torch.Tensor | np.ndarray,
    positions_A: ArrayLike,
    rotations: ArrayLike,
    *,
    shape_zyx: tuple[int, int, int],
    pixel_size_A: float,
    average_pixel_size_A: float,
    batch: int = 16,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The average placed at every particle (see the module docstring).

    Parameters
    ----------
    average : torch.Tensor or numpy.ndarray, (n, n, n)
        The map (z, y, x), centre voxel n // 2.
    positions_A : array, (m, 3)
        Particle centres (x, y, z), Å from the tomogram's centre, shifts included.
    rotations : array, (m, 3, 3)
        Each particle's rotation R (x_tomo = R x_ref).
    shape_zyx : tuple of int
        The output volume's size (z, y, x), voxels.
    pixel_size_A : float
        Its voxel size, Å.
    average_pixel_size_A : float
        The average's voxel size, Å.
    batch : int
        Particles per vectorised batch.
    device : torch.device or str, optional
        Where to compute.

    Returns
    -------
    torch.Tensor, float32, ``shape_zyx``
        The sum of the placed copies.
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    avg = as_tensor(average, torch.float32, dev)
    n_avg = avg.shape[-1]
    n = max(2, int(round(n_avg * average_pixel_size_A / pixel_size_A)))
    if n != n_avg:
        avg = fourier_crop(avg, (n, n, n))
    big = 2 * n
    spec = centred_spectrum(avg[None], big)  # (1, 2, P, P, P)
    k = centred_grid(big, dev)
    apodisation = trilinear_apodisation(n, big, dev)
    pos = np.asarray(positions_A, dtype=np.float64).reshape(-1, 3)
    rot = torch.as_tensor(np.asarray(rotations, dtype=np.float64), dtype=torch.float32, device=dev).reshape(-1, 3, 3)
    centre = pos[:, ::-1] / pixel_size_A + np.array([s // 2 for s in shape_zyx])
    whole = np.round(centre).astype(np.int64)
    frac = torch.as_tensor(centre - whole, dtype=torch.float32, device=dev)  # (m, 3) z y x
    out = torch.zeros(shape_zyx, dtype=torch.float32, device=dev)
    r = torch.arange(n, device=dev)
    for start in range(0, len(pos), batch):
        sl = slice(start, start + batch)
        b = len(pos[sl])
        src = torch.einsum("...a,mab->m...b", k, rot[sl])  # Rᵀ k for each particle
        sampled = sample_centred(spec.expand(b, -1, -1, -1, -1).contiguous(), src)
        f = frac[sl]
        phase = (-2 * math.pi / big) * (
            k[..., 0] * f[:, 2, None, None, None]
            + k[..., 1] * f[:, 1, None, None, None]
            + k[..., 2] * f[:, 0, None, None, None]
        )
        copies = centred_to_volume(
            torch.complex(sampled[:, 0], sampled[:, 1]) * torch.polar(torch.ones_like(phase), phase), n
        )
        copies = copies / apodisation
        corner = torch.as_tensor(whole[sl] - n // 2, device=dev)
        iz = corner[:, 0, None, None, None] + r[None, :, None, None]
        iy = corner[:, 1, None, None, None] + r[None, None, :, None]
        ix = corner[:, 2, None, None, None] + r[None, None, None, :]
        iz, iy, ix = torch.broadcast_tensors(iz, iy, ix)
        inside = (iz >= 0) & (iz < shape_zyx[0]) & (iy >= 0) & (iy < shape_zyx[1]) & (ix >= 0) & (ix < shape_zyx[2])
        out.index_put_((iz[inside], iy[inside], ix[inside]), copies[inside].to(torch.float32), accumulate=True)
    return out


__all__ = ["map_back"]
