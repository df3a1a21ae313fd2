"""Masks for references and averages: sphere, cylinder, or a map's density above a threshold; soft edges.

A mask is (z, y, x) float32 in [0, 1], centre at voxel N // 2 (conventions.md), lengths in Å. Each shape
is 1 inside and falls to 0 over a raised-cosine edge of width ``edge_A`` outside it: at a distance d (Å)
outside the shape the mask is ``½(1 + cos(π d / edge_A))`` for 0 < d < edge_A, 0 beyond (RELION's
relion_mask_create soft edge). For the sphere and the cylinder d is the exact Euclidean distance to the
solid; for a thresholded map it is the Euclidean distance transform (Å) to the voxels above the threshold,
dilated by ``dilation_A`` first.

The volume of a soft mask (Σ mask · voxel³) is that of the shape plus its edge's contribution,
∫₀^w ½(1 + cos(π d / w)) dV(d), with V(d) the volume of the shape grown by d (Steiner's formula for a
convex body).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
import torch

from tomoforge.methods.fourier import as_tensor

Axis = Literal["z", "y", "x"]
_AXIS_INDEX = {"z": 0, "y": 1, "x": 2}


def soft_edge(distance_A: torch.Tensor, edge_A: float) -> torch.Tensor:
    """The mask value at ``distance_A`` (Å) outside a shape (≤ 0 inside): 1 inside, raised cosine over
    ``edge_A``, 0 beyond (a hard edge, 1 up to the surface, when ``edge_A`` is 0)."""
    d = torch.clamp(distance_A, min=0.0)
    if edge_A <= 0:
        return (distance_A <= 0).to(torch.float32)
    t = torch.clamp(d / edge_A, max=1.0)
    return (0.5 * (1 + torch.cos(torch.pi * t))).to(torch.float32)


def _grid_A(
    box: tuple[int, int, int],
    pixel_size_A: float,
    centre_A: tuple[float, float, float],
    device: torch.device | str | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z, y, x) coordinates in Å of each voxel from ``centre_A`` (z, y, x Å from voxel N // 2)."""
    if any(int(n) < 1 for n in box):
        raise ValueError(f"a box is at least 1 voxel on each axis, got {box}")
    if not pixel_size_A > 0:
        raise ValueError(f"the pixel size must be > 0 Å, got {pixel_size_A}")
    axes = [
        (torch.arange(int(n), dtype=torch.float64, device=device) - int(n) // 2) * pixel_size_A - c
        for n, c in zip(box, centre_A)
    ]
    z, y, x = torch.meshgrid(*axes, indexing="ij")
    return z, y, x


def sphere_mask(
    box: tuple[int, int, int],
    pixel_size_A: float,
    radius_A: float,
    *,
    edge_A: float = 0.0,
    centre_A: tuple[float, float, float] = (0.0, 0.0, 0.0),
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A sphere of ``radius_A`` (Å) with a soft edge of ``edge_A`` (Å) outside it.

    Parameters
    ----------
    box : tuple of 3 int
        (z, y, x) size in voxels.
    pixel_size_A : float
        Voxel size (Å).
    radius_A : float
        Radius (Å) where the edge starts (the mask is 1 within it).
    edge_A : float
        Width (Å) of the raised-cosine edge.
    centre_A : tuple of 3 float
        (z, y, x) offset (Å) of the centre from voxel N // 2.
    device : torch device, optional
        Where the mask is made.

    Returns
    -------
    torch.Tensor
        (box) float32 in [0, 1].
    """
    z, y, x = _grid_A(box, pixel_size_A, centre_A, device)
    r = torch.sqrt(z * z + y * y + x * x)
    return soft_edge(r - radius_A, edge_A)


def cylinder_mask(
    box: tuple[int, int, int],
    pixel_size_A: float,
    radius_A: float,
    height_A: float,
    *,
    axis: Axis = "z",
    edge_A: float = 0.0,
    centre_A: tuple[float, float, float] = (0.0, 0.0, 0.0),
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A solid cylinder of ``radius_A`` and ``height_A`` (Å) along ``axis``, with a soft edge outside it.

    Parameters
    ----------
    box : tuple of 3 int
        (z, y, x) size in voxels.
    pixel_size_A : float
        Voxel size (Å).
    radius_A, height_A : float
        Radius and full height (Å) of the solid (the mask is 1 within it).
    axis : {"z", "y", "x"}
        The cylinder's axis.
    edge_A : float
        Width (Å) of the raised-cosine edge; the distance outside is the Euclidean one to the solid
        (rounded at the rims).
    centre_A : tuple of 3 float
        (z, y, x) offset (Å) of the centre from voxel N // 2.
    device : torch device, optional
        Where the mask is made.

    Returns
    -------
    torch.Tensor
        (box) float32 in [0, 1].
    """
    if axis not in _AXIS_INDEX:
        raise ValueError(f"a cylinder's axis is z, y or x, got {axis!r}")
    coords = _grid_A(box, pixel_size_A, centre_A, device)
    along = coords[_AXIS_INDEX[axis]]
    across = [c for i, c in enumerate(coords) if i != _AXIS_INDEX[axis]]
    rho = torch.sqrt(across[0] ** 2 + across[1] ** 2)
    out_r = rho - radius_A
    out_h = along.abs() - height_A / 2
    outside = torch.sqrt(torch.clamp(out_r, min=0) ** 2 + torch.clamp(out_h, min=0) ** 2)
    inside = torch.maximum(out_r, out_h)  # ≤ 0 within the solid
    return soft_edge(torch.where(inside > 0, outside, inside), edge_A)


def threshold_mask(
    volume: torch.Tensor | npt.ArrayLike,
    pixel_size_A: float,
    threshold: float,
    *,
    dilation_A: float = 0.0,
    edge_A: float = 0.0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The voxels of a map above ``threshold``, grown by ``dilation_A`` (Å), with a soft edge of ``edge_A``.

    Parameters
    ----------
    volume : (z, y, x) array
        The map (protein bright).
    pixel_size_A : float
        Its voxel size (Å).
    threshold : float
        Density above which a voxel is inside (the map's units).
    dilation_A : float
        Grow the inside by this distance (Å, Euclidean).
    edge_A : float
        Width (Å) of the raised-cosine edge beyond the dilated inside.
    device : torch device, optional
        Where the result is put (the distance transform runs on the CPU, scipy's exact EDT).

    Returns
    -------
    torch.Tensor
        (z, y, x) float32 in [0, 1].

    Raises
    ------
    ValueError
        No voxel above ``threshold`` (the message gives the map's maximum).
    """
    from scipy.ndimage import distance_transform_edt

    v = as_tensor(volume, torch.float32, "cpu").numpy()
    if v.ndim != 3:
        raise ValueError(f"a volume is (z, y, x), got shape {v.shape}")
    inside = v > threshold
    if not inside.any():
        raise ValueError(f"no voxel above the threshold {threshold:g} (the map's maximum is {float(v.max()):g})")
    distance = distance_transform_edt(~inside).astype(np.float64) * pixel_size_A  # 0 inside
    grown = torch.as_tensor(distance - dilation_A)
    grown[torch.as_tensor(inside)] = -1.0
    out = soft_edge(grown, edge_A)
    return out.to(device) if device is not None else out


def mask_volume_A3(mask: torch.Tensor | npt.ArrayLike, pixel_size_A: float) -> float:
    """The volume (Å³) of a mask: Σ values × voxel³."""
    m = as_tensor(mask, torch.float64)
    return float(m.sum()) * pixel_size_A**3
