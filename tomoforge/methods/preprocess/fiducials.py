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
from tomoforge.methods.preprocess.settings import BEAD_DETECTION_DEFAULTS

MIN_RING_PIXELS = 8
#: patches of at most this many pixels at once (memory: ~100 bytes each)
PATCH_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class _Patch:
    """The square patches around beads: flat pixel indices into the (n, y, x) stack (clamped to the image),
    float32 offsets from each sub-pixel centre and distance, and whether a pixel lies in the image; (b, p, p)."""

    index: torch.Tensor
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
        dy, dx = yy - cy[:, None, None], xx - cx[:, None, None]
        inside = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
        index = (view[:, None, None] * ny + yy.clamp(0, ny - 1)) * nx + xx.clamp(0, nx - 1)
        return cls(index, dx, dy, torch.sqrt(dx * dx + dy * dy), inside)


@dataclass(frozen=True)
class ErasedBeads:
    """Images with their beads erased, and the number of beads erased in each (n,)."""

    images: torch.Tensor
    counts: list[int]


def find_beads(
    images: torch.Tensor | npt.ArrayLike,
    diameter_px: float,
    *,
    threshold_sd: float = BEAD_DETECTION_DEFAULTS.threshold_sd,
    polarity: int = -1,
    max_count: int | None = None,
    bin_to_px: float = BEAD_DETECTION_DEFAULTS.bin_to_px,
) -> np.ndarray:
    """Beads detected in each image by the matched filter of ``methods.align.beads``, on the images binned
    (Fourier cropping) by the whole factor that leaves a bead about ``bin_to_px`` wide.

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
    bin_to_px : float
        Bin by floor(diameter_px / bin_to_px) (at least 1) to detect; 0: never bin. The positions are those
        of the binned images scaled back (about ±factor / 2 px: erase a margin).

    Returns
    -------
    numpy.ndarray
        (n, m, 2) (x, y) positions in pixels from the image centre, m the most beads found in one image; NaN
        pads the images with fewer.
    """
    from tomoforge.methods.align.beads import bead_score, detect_beads
    from tomoforge.methods.binning import bin_images

    x = as_tensor(images, torch.float32)
    x = x[None] if x.ndim == 2 else x
    factor = max(1.0, float(np.floor(diameter_px / bin_to_px))) if bin_to_px else 1.0
    small = bin_images(x, factor) if factor > 1 else x
    scale = np.array([x.shape[-1] / small.shape[-1], x.shape[-2] / small.shape[-2]])
    score = bead_score(small - _planes(small), diameter_px / factor, polarity=polarity).cpu().numpy()
    found = [
        detect_beads(s, diameter_px / factor, threshold_sd=threshold_sd, max_count=max_count, border_px=2)[0]
        for s in score
    ]
    m = max((len(f) for f in found), default=0)
    out = np.full((len(found), m, 2), np.nan)
    binned_centre = np.array([small.shape[-1] // 2, small.shape[-2] // 2])
    centre = np.array([x.shape[-1] // 2, x.shape[-2] // 2])
    for i, f in enumerate(found):  # Fourier binning keeps index 0 in place: index j of the binned image is j × scale
        out[i, : len(f)] = (f + binned_centre) * scale - centre
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
        Width (pixels) of the ring whose plane fit and noise paint the disk (default: ``radius_px`` / 2, at
        least 3).
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
    ring = max(3.0, radius_px / 2) if ring_px is None else float(ring_px)
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
    covered = torch.zeros(n * ny * nx, dtype=torch.bool, device=dev)
    for part in parts:  # every bead's disk first: the rings of all beads leave all disks out
        patch = _Patch.of(vt[part], cy[part], cx[part], half, (ny, nx))
        covered[patch.index[(patch.dist <= radius_px) & patch.inside]] = True
    source = x.reshape(-1).clone()
    out = x.reshape(-1)
    touched = np.zeros(len(view), bool)
    for k, part in enumerate(parts):
        patch = _Patch.of(vt[part], cy[part], cx[part], half, (ny, nx))
        disk = (patch.dist <= radius_px) & patch.inside
        ring_mask = (patch.dist > radius_px) & (patch.dist <= radius_px + ring) & patch.inside & ~covered[patch.index]
        fill = _plane_fill(source[patch.index], ring_mask, patch.dx, patch.dy, seed + k)
        short = ~torch.isfinite(fill[:, 0, 0])
        if short.any():  # too few ring pixels: the image's median and robust SD
            level, sd = _image_level(source.reshape(n, ny, nx)[vt[part][short]])
            gen = torch.Generator(device=dev).manual_seed(seed + k)
            noise = torch.randn(fill[short].shape, generator=gen, device=dev)
            fill[short] = level[:, None, None] + sd[:, None, None] * noise
        out[patch.index[disk]] = fill[disk]
        touched[part] = disk.flatten(1).any(1).cpu().numpy()
    for v in np.unique(view):
        counts[int(v)] = int(touched[view == v].sum())
    return ErasedBeads(x, counts)


def _plane_fill(
    values: torch.Tensor, ring: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, seed: int
) -> torch.Tensor:
    """(b, p, p) float32 paint for each bead's patch of ``values``: the plane a + b·dx + c·dy fitted (least
    squares) to its ``ring`` pixels plus Gaussian noise of the fit's residual SD; NaN for a bead with fewer
    than ``MIN_RING_PIXELS`` ring pixels. The moments are summed in float64 about each ring's mean."""
    w = ring.to(torch.float32)
    count = w.sum(dim=(1, 2), dtype=torch.float64)
    enough = count >= MIN_RING_PIXELS
    mean = (values * w).sum(dim=(1, 2), dtype=torch.float64) / count.clamp(min=1)
    v = values - mean.to(torch.float32)[:, None, None]

    def moment(*factors: torch.Tensor) -> torch.Tensor:
        product = w
        for f in factors:
            product = product * f
        return product.sum(dim=(1, 2), dtype=torch.float64)

    sx, sy, sxx, sxy, syy = moment(dx), moment(dy), moment(dx, dx), moment(dx, dy), moment(dy, dy)
    normal = torch.stack(
        [torch.stack([count, sx, sy], -1), torch.stack([sx, sxx, sxy], -1), torch.stack([sy, sxy, syy], -1)], -2
    )
    rhs = torch.stack([moment(v), moment(v, dx), moment(v, dy)], -1)
    eye = torch.eye(3, dtype=torch.float64, device=values.device)
    coef = torch.linalg.solve(torch.where(enough[:, None, None], normal, eye), torch.where(enough[:, None], rhs, 0.0))
    c = coef.to(torch.float32)
    plane = c[:, 0, None, None] + c[:, 1, None, None] * dx + c[:, 2, None, None] * dy
    resid = (v - plane) * w
    sd = torch.sqrt((resid * resid).sum(dim=(1, 2), dtype=torch.float64) / torch.clamp(count - 3, min=1))
    sd = sd.to(torch.float32)
    gen = torch.Generator(device=values.device).manual_seed(seed)
    noise = torch.randn(values.shape, generator=gen, device=values.device)
    fill = plane + mean.to(torch.float32)[:, None, None] + sd[:, None, None] * noise
    fill[~enough] = float("nan")
    return fill


def _image_level(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Median and robust SD (1.4826 × MAD) of each (y, x) image of (k, y, x), from every 7th pixel."""
    flat = images.reshape(len(images), -1)[:, ::7]
    median = flat.median(dim=1).values
    return median, (flat - median[:, None]).abs().median(dim=1).values * 1.4826
