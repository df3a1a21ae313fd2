"""Gold beads erased from tilt images: each bead's disk painted with its neighbourhood's background and noise.

For every bead (a position in a view) the pixels within ``radius_px`` of its sub-pixel centre are replaced
by a plane fitted (least squares) to the ring ``radius_px < d ≤ radius_px + ring_px`` around it, plus
Gaussian noise of the ring's residual standard deviation: the bead's contrast goes, the local mean,
gradient and noise level stay (IMOD ccderaser's "replace fiducials by a fitted polynomial with noise").
Ring pixels inside any bead's disk are left out of the fit, so neighbouring beads do not leak in; a bead
whose ring has fewer than 8 usable pixels is filled with its image's median and robust SD.

Beads come from a landmark model or from detection (``find_beads``: the matched filter of
``methods.align.beads`` on each image less its least-squares plane). Positions are (x, y) pixels from the image centre (index n // 2), NaN for a bead
not seen in a view; all beads of all views are erased in one vectorised pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from tomoforge.methods.fourier import as_tensor

MIN_RING_PIXELS = 8
#: patches of at most this many pixels at once (memory: ~100 bytes each)
PATCH_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class _Patch:
    """The square patches around beads: pixel indices (clamped to the image), offsets from each sub-pixel
    centre, distance, and whether a pixel lies in the image; (b, p, p) each."""

    view: torch.Tensor
    ys: torch.Tensor
    xs: torch.Tensor
    dx: torch.Tensor
    dy: torch.Tensor
    dist: torch.Tensor
    inside: torch.Tensor

    @classmethod
    def of(cls, view: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, half: int, shape: tuple[int, int]) -> _Patch:
        ny, nx = shape
        offsets = torch.arange(-half, half + 1, device=cy.device)
        yy = torch.round(cy)[:, None, None].long() + offsets[None, :, None]
        xx = torch.round(cx)[:, None, None].long() + offsets[None, None, :]
        yy, xx = torch.broadcast_tensors(yy, xx)
        dy = (yy - cy[:, None, None].double()).double()
        dx = (xx - cx[:, None, None].double()).double()
        inside = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
        v = view[:, None, None].expand_as(yy)
        return cls(v, yy.clamp(0, ny - 1), xx.clamp(0, nx - 1), dx, dy, torch.sqrt(dx * dx + dy * dy), inside)


@dataclass(frozen=True)
class ErasedBeads:
    """Images with their beads erased, and the number of beads erased in each (n,)."""

    images: torch.Tensor
    counts: list[int]


def find_beads(
    images: torch.Tensor | npt.ArrayLike,
    diameter_px: float,
    *,
    threshold_sd: float = 6.0,
    polarity: int = -1,
    max_count: int | None = None,
) -> np.ndarray:
    """Beads detected in each image by the matched filter of ``methods.align.beads``.

    Parameters
    ----------
    images : (n, y, x) array
        The tilt images.
    diameter_px : float
        Bead diameter (pixels).
    threshold_sd : float
        A peak of the filtered image above this many robust SD is a bead.
    polarity : int
        −1 for dark beads (raw images), +1 for bright (inverted images).
    max_count : int, optional
        At most this many beads per image (the strongest).

    Returns
    -------
    numpy.ndarray
        (n, m, 2) (x, y) positions in pixels from the image centre, m the most beads found in one image; NaN
        pads the images with fewer.
    """
    from tomoforge.methods.align.beads import bead_score, detect_beads

    x = as_tensor(images, torch.float32)
    x = x[None] if x.ndim == 2 else x
    score = bead_score(x - _planes(x), diameter_px, polarity=polarity).cpu().numpy()
    found = [
        detect_beads(s, diameter_px, threshold_sd=threshold_sd, max_count=max_count, border_px=2)[0] for s in score
    ]
    m = max((len(f) for f in found), default=0)
    out = np.full((len(found), m, 2), np.nan)
    for i, f in enumerate(found):
        out[i, : len(f)] = f
    return out


def _planes(images: torch.Tensor) -> torch.Tensor:
    """(n, y, x) the least-squares plane of each image (a thickness gradient would wrap around into an edge
    that the matched filter takes for beads)."""
    n, ny, nx = images.shape
    yy, xx = torch.meshgrid(
        torch.arange(ny, dtype=torch.float64, device=images.device) - ny // 2,
        torch.arange(nx, dtype=torch.float64, device=images.device) - nx // 2,
        indexing="ij",
    )
    basis = torch.stack([torch.ones_like(xx), xx, yy]).reshape(3, -1)  # (3, p)
    coef = torch.linalg.lstsq(basis.T, images.reshape(n, -1).T.double()).solution  # (3, n)
    return (coef.T @ basis).reshape(n, ny, nx).to(images.dtype)


def erase_beads(
    images: torch.Tensor | npt.ArrayLike,
    positions_px: npt.ArrayLike,
    radius_px: float,
    *,
    ring_px: float | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> ErasedBeads:
    """Erase beads of ``radius_px`` at ``positions_px`` from ``images``.

    Parameters
    ----------
    images : (n, y, x) array
        The tilt images (any units: counts, normalised).
    positions_px : (n, m, 2) array
        (x, y) of m beads in each image, pixels from the image centre (index n // 2); NaN where absent.
    radius_px : float
        Radius (pixels) of the disk painted over each bead: the bead's radius plus its fringe and the
        position's uncertainty.
    ring_px : float, optional
        Width (pixels) of the ring whose plane fit and noise paint the disk (default: ``radius_px``, at least 3).
    seed : int
        Seed of the painted noise.
    device : torch device, optional
        Where to compute (None: the input's).

    Returns
    -------
    ErasedBeads
        ``images``: (n, y, x) float32 copy with the disks painted; ``counts``: beads erased per image (the
        positions given whose disk touches the image).
    """
    x = as_tensor(images, torch.float32, device).clone()
    if x.ndim != 3:
        raise ValueError(f"images are (n, y, x), got shape {tuple(x.shape)}")
    n, ny, nx = x.shape
    pos = np.asarray(positions_px, dtype=np.float64).reshape(n, -1, 2)
    ring = max(3.0, radius_px) if ring_px is None else float(ring_px)
    view, bead = np.nonzero(np.isfinite(pos).all(-1))
    counts = [0] * n
    if len(view) == 0:
        return ErasedBeads(x, counts)
    dev = x.device
    cx = torch.as_tensor(pos[view, bead, 0] + nx // 2, dtype=torch.float32, device=dev)
    cy = torch.as_tensor(pos[view, bead, 1] + ny // 2, dtype=torch.float32, device=dev)
    vt = torch.as_tensor(view, device=dev)
    half = int(math.ceil(radius_px + ring))
    chunk = max(1, PATCH_ELEMENTS // (2 * half + 1) ** 2)
    parts = [slice(i, i + chunk) for i in range(0, len(view), chunk)]
    covered = torch.zeros((n, ny, nx), dtype=torch.bool, device=dev)
    for part in parts:  # every bead's disk first: the rings of all beads leave all disks out
        patch = _Patch.of(vt[part], cy[part], cx[part], half, (ny, nx))
        disk = (patch.dist <= radius_px) & patch.inside
        covered[patch.view[disk], patch.ys[disk], patch.xs[disk]] = True
    source = x.clone()
    flat = source.flatten(1)
    median = flat.median(dim=1).values
    robust_sd = (flat - median[:, None]).abs().median(dim=1).values * 1.4826
    touched = np.zeros(len(view), bool)
    for k, part in enumerate(parts):
        patch = _Patch.of(vt[part], cy[part], cx[part], half, (ny, nx))
        disk = (patch.dist <= radius_px) & patch.inside
        ring_mask = (patch.dist > radius_px) & (patch.dist <= radius_px + ring) & patch.inside
        ring_mask &= ~covered[patch.view, patch.ys, patch.xs]
        values = source[patch.view, patch.ys, patch.xs].to(torch.float64)
        fallback = (median[vt[part]].double(), robust_sd[vt[part]].double())
        fill = _plane_fill(values, ring_mask, patch.dx, patch.dy, fallback, seed + k)
        x[patch.view[disk], patch.ys[disk], patch.xs[disk]] = fill[disk].to(torch.float32)
        touched[part] = disk.flatten(1).any(1).cpu().numpy()
    for v in np.unique(view):
        counts[int(v)] = int(touched[view == v].sum())
    return ErasedBeads(x, counts)


def _plane_fill(
    values: torch.Tensor,
    ring: torch.Tensor,
    dx: torch.Tensor,
    dy: torch.Tensor,
    fallback: tuple[torch.Tensor, torch.Tensor],
    seed: int,
) -> torch.Tensor:
    """(b, p, p) paint for each bead's patch: the plane a + b·dx + c·dy fitted to its ring pixels, plus noise
    of the fit's residual SD; beads with too few ring pixels get ``fallback`` (their image's median and
    robust SD, (b,) each)."""
    w = ring.to(values.dtype)
    basis = torch.stack([torch.ones_like(dx), dx, dy], dim=-1)  # (b, p, p, 3)
    a = torch.einsum("bijk,bijl,bij->bkl", basis, basis, w)
    rhs = torch.einsum("bijk,bij,bij->bk", basis, values, w)
    count = w.sum(dim=(1, 2))
    enough = count >= MIN_RING_PIXELS
    eye = torch.eye(3, dtype=values.dtype, device=values.device)
    coef = torch.linalg.solve(torch.where(enough[:, None, None], a, eye), torch.where(enough[:, None], rhs, 0.0))
    plane = torch.einsum("bijk,bk->bij", basis, coef)
    resid = (values - plane) * w
    sd = torch.sqrt((resid * resid).sum(dim=(1, 2)) / torch.clamp(count - 3, min=1))
    level = torch.where(enough[:, None, None], plane, fallback[0][:, None, None])
    sd = torch.where(enough, sd, fallback[1])
    gen = torch.Generator(device=values.device).manual_seed(seed)
    noise = torch.randn(values.shape, generator=gen, dtype=values.dtype, device=values.device)
    return level + sd[:, None, None] * noise
