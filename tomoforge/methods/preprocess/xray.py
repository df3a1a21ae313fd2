"""X-ray eraser: hot pixels and X-ray hits found as outliers against robust local statistics, replaced.

One pass per image, every step a whole-image tensor operation except those on the few outliers:

1. b₀ = mean of the (2·w+1)² box around each pixel (w = ``background_px``; at the edges, of the pixels
   inside the image);
2. the local noise σ₀ = √(π/2) · mean |x − b₀| over tiles of 16² pixels, the median of each 3 × 3 tiles
   (48² pixels: a tile holding hits, a streak or a bead edge does not count), interpolated bilinearly;
   floored at 0.1 × the image's median tile and above float32 rounding, so that a flat region cannot
   make rounding errors outliers;
3. the pixels are winsorised, x_c = b₀ + clip(x − b₀, −1.5·σ₀, +4·σ₀), and b = the box mean of x_c: a hit
   pulls b by at most 4·σ₀/(2·w+1)² per pixel, so hits neither lift their own background nor hide each
   other (the clip's asymmetry lifts b by 0.03·σ₀ for Gaussian noise); the noise σ = the larger of σ₀ and
   the mean (3 × 3 tiles) of |clip(x − b, ±4·σ₀)|;
4. a pixel must stand out of every side of its neighbourhood: its bright score is (x − b⁺)/σ, b⁺ = the
   largest of b and the means of x_c over the four w × w boxes diagonal to it (its own row and column
   left out), and with ``polarity="both"`` the dark one (b⁻ − x)/σ, b⁻ the smallest. A box straddling the
   edge of a dark gold bead is pulled down by it by several σ (the clip is around b₀, pulled down too),
   which made the bead's bright Fresnel fringe outliers; a corner box on the far side is not. A peak
   scores above ``threshold_sd``; its neighbours within ``max_radius_px`` with a score above ``grow_sd``
   join it (as in IMOD's ccderaser, peak and grow criteria are in standard deviations of the local noise);
5. each flagged pixel is replaced by the mean of the unflagged pixels of its (2·w+1)² box.

The box means are separable sums of 2ᵏ-long runs (O(log w) additions per pixel; the corner boxes: one
more such sum, shifted); steps 4–5 work on the coordinates of the peaks and outliers only. On CPU the
images are shared among ``torch.get_num_threads()`` Python threads, each running torch single-threaded on
one image at a time (cache-sized arrays, no oversubscription on a loaded machine); on a GPU the images go
in chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from tomoforge.methods.fourier import as_tensor
from tomoforge.methods.preprocess.settings import XRAY_DEFAULTS, XraySettings
from tomoforge.methods.reconstruct.slabs import single_threaded_torch

__all__ = ["XRAY_DEFAULTS", "XrayResult", "XraySettings", "erase_xrays", "find_outliers"]

CLIP_SD = 4.0  # winsorising level above the background, in local noise SDs (and the noise estimate's, both sides)
CLIP_LOW_SD = 1.5  # winsorising level below (bias +0.03 SD for Gaussian noise)
SIGMA_TILE = 16  # the local noise is averaged over tiles of this many pixels, then over 3 × 3 tiles
SIGMA_FLOOR = 0.1  # the local noise is at least this fraction of the image's
SQRT_HALF_PI = float(np.sqrt(np.pi / 2))
SCALE_SAMPLES = 65536  # about this many pixels per image for its mean
GPU_CHUNK = 8  # images per chunk on a GPU

T = TypeVar("T")


@dataclass
class XrayResult:
    """Erased images (n, y, x), the outlier mask, and per image: pixels replaced and hits (blobs)."""

    images: torch.Tensor
    mask: torch.Tensor
    pixels_replaced: list[int]
    hits: list[int]


@dataclass
class _Settings:
    threshold_sd: float
    max_radius_px: float
    grow_sd: float
    half: int
    polarity: str


@dataclass
class _Found:
    """Outliers of a block of images (n, y, x): their flat indices (sorted) and the robust background b."""

    flat: torch.Tensor
    background: torch.Tensor


def _run_sums(x: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """Sums of ``width`` consecutive elements along ``dim`` (length n − width + 1): runs of 1, 2, 4, …
    elements by doubling, added along the binary digits of ``width``."""
    n = x.shape[dim]
    length = n - width + 1
    out: torch.Tensor | None = None
    power, run, start, remaining = x, 1, 0, width
    while True:
        if remaining & 1:
            block = power.narrow(dim, start, length)
            out = block if out is None else out + block
            start += run
        remaining >>= 1
        if not remaining:
            break
        size = power.shape[dim] - run
        power = power.narrow(dim, 0, size) + power.narrow(dim, run, size)
        run *= 2
    assert out is not None
    return out


def _inverse_counts(shape: tuple[int, int], half: int, device: torch.device) -> torch.Tensor:
    """1 / (number of image pixels in the (2·half+1)² box) for each pixel of a (y, x) image."""

    def counts(n: int) -> torch.Tensor:
        i = torch.arange(n, device=device)
        return ((i + half).clamp(max=n - 1) - (i - half).clamp(min=0) + 1).to(torch.float32)

    return 1.0 / (counts(shape[0])[:, None] * counts(shape[1])[None, :])


def _box_mean(x: torch.Tensor, half: int, inverse_counts: torch.Tensor) -> torch.Tensor:
    """Mean of (n, y, x) images in (2·half+1)² boxes, over the pixels inside the image."""
    width = 2 * half + 1
    rows = _run_sums(F.pad(x, [0, 0, half, half]), width, -2)
    return _run_sums(F.pad(rows, [half, half]), width, -1) * inverse_counts


def _corner_means(x: torch.Tensor, half: int) -> torch.Tensor:
    """(4, n, y, x): means of (n, y, x) images over the four half × half boxes diagonal to each pixel (rows
    y − half … y − 1 or y + 1 … y + half, the same for columns; the pixel's own row and column excluded),
    over the pixels inside the image; NaN where a box holds none."""
    _, ny, nx = x.shape
    sums = _run_sums(_run_sums(F.pad(x, [half] * 4), half, -2), half, -1)  # (n, y + half + 1, x + half + 1)

    def counts(size: int, after: bool) -> torch.Tensor:  # image pixels of the box along one side
        i = torch.arange(size, device=x.device)
        return (size - 1 - i if after else i).clamp(max=half).to(x.dtype)

    means = []
    for dy in (0, half + 1):
        for dx in (0, half + 1):
            count = counts(ny, dy > 0)[:, None] * counts(nx, dx > 0)[None, :]
            box = sums[:, dy : dy + ny, dx : dx + nx] / count.clamp(min=1)
            means.append(torch.where(count > 0, box, torch.nan))
    return torch.stack(means)


def _local_sigma(abs_residual: torch.Tensor, median: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(σ at every pixel, σ of each image): √(π/2) · mean |residual| over 16² tiles, then the median (or the
    mean) of each 3 × 3 tiles, bilinearly interpolated; the image's σ is the median over its tiles."""
    n, ny, nx = abs_residual.shape
    t = SIGMA_TILE
    ty, tx = -(-ny // t), -(-nx // t)
    padded = abs_residual if (ny % t, nx % t) == (0, 0) else F.pad(abs_residual, [0, tx * t - nx, 0, ty * t - ny])
    sums = padded.view(n, ty * t, tx, t).sum(dim=-1).view(n, ty, t, tx).sum(dim=2)

    def counts(size: int, tiles: int) -> torch.Tensor:  # image pixels along one side of each tile
        return (size - torch.arange(tiles, device=abs_residual.device) * t).clamp(max=t).to(sums.dtype)

    tiles = F.pad(sums / (counts(ny, ty)[:, None] * counts(nx, tx)), [1, 1, 1, 1], value=float("nan"))
    around = torch.stack([tiles[:, i : i + ty, j : j + tx] for i in range(3) for j in range(3)], dim=1)
    local = (around.nanmedian(dim=1).values if median else around.nanmean(dim=1)) * SQRT_HALF_PI
    full = F.interpolate(local[:, None], size=(ty * t, tx * t), mode="bilinear", align_corners=False)
    return full[:, 0, :ny, :nx], local.flatten(1).median(dim=1).values


def _disk_offsets(radius: float, device: torch.device) -> torch.Tensor:
    """(m, 2) integer (dy, dx) with dy² + dx² ≤ radius², the centre included."""
    r = int(np.floor(radius))
    yy, xx = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
    keep = (yy * yy + xx * xx) <= radius * radius
    return torch.stack([yy[keep], xx[keep]], dim=1).to(device)


def _neighbours(flat: torch.Tensor, offsets: torch.Tensor, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices (k, m) of ``flat`` + each (dy, dx) offset in a (n, y, x) stack, and whether each is
    inside its image (outside ones are clamped to the pixel itself)."""
    _, ny, nx = shape
    yx = flat % (ny * nx)
    y, x = yx // nx, yx % nx
    ny_, nx_ = y[:, None] + offsets[:, 0], x[:, None] + offsets[:, 1]
    inside = (ny_ >= 0) & (ny_ < ny) & (nx_ >= 0) & (nx_ < nx)
    moved = flat[:, None] + offsets[:, 0] * nx + offsets[:, 1]
    return torch.where(inside, moved, flat[:, None]), inside


def _detect(x: torch.Tensor, s: _Settings, inverse_counts: torch.Tensor) -> _Found:
    """The outliers of (n, y, x) images (steps 1–4 of the module's description)."""
    _n, ny, nx = x.shape
    step = max(1, int(np.sqrt(ny * nx / SCALE_SAMPLES)))
    offset = x[:, ::step, ::step].mean(dim=(1, 2), keepdim=True)  # box sums of x − offset: exact if flat
    x = x - offset
    b0 = _box_mean(x, s.half, inverse_counts)
    r0 = x - b0
    sigma, sigma_image = _local_sigma(r0.abs(), median=True)
    scale = x[:, ::step, ::step].abs().mean(dim=(1, 2)) + offset.abs().flatten()  # float32 rounding floor
    floor = torch.maximum(SIGMA_FLOOR * sigma_image, 1e-5 * scale).clamp(min=1e-30)[:, None, None]
    sigma = torch.maximum(sigma, floor)
    limit = CLIP_SD * sigma
    winsorised = torch.clamp(r0, -CLIP_LOW_SD * sigma, limit).add_(b0)
    background = _box_mean(winsorised, s.half, inverse_counts)
    corners = _corner_means(winsorised, s.half)
    residual = x - background
    clipped = torch.clamp(residual, -CLIP_LOW_SD * sigma, limit).abs_()
    sigma = torch.maximum(sigma, _local_sigma(clipped, median=False)[0])
    high = torch.maximum(background, corners.nan_to_num(nan=-torch.inf).amax(dim=0))
    score = x.sub(high).div_(sigma)
    if s.polarity == "both":
        low = torch.minimum(background, corners.nan_to_num_(nan=torch.inf).amin(dim=0))
        score = torch.maximum(score, low.sub_(x).div_(sigma))
    flat_score = score.view(-1)
    peaks = torch.nonzero(flat_score > s.threshold_sd).flatten()
    near, inside = _neighbours(peaks, _disk_offsets(s.max_radius_px, x.device), x.shape)
    grown = near[inside & (flat_score[near] > s.grow_sd)]
    return _Found(torch.unique(torch.cat([peaks, grown])), background.add_(offset))


def _replace(x: torch.Tensor, found: _Found, half: int, out: torch.Tensor, mask: torch.Tensor) -> None:
    """Into ``out``: the images with each outlier replaced by the mean of the unflagged pixels of its box;
    into ``mask``: the outliers."""
    mask.zero_()
    flat_mask = mask.view(-1)
    flat_mask[found.flat] = True
    box = torch.arange(-half, half + 1, device=x.device)
    offsets = torch.stack(torch.meshgrid(box, box, indexing="ij"), dim=-1).reshape(-1, 2)
    near, inside = _neighbours(found.flat, offsets, x.shape)
    use = inside & ~flat_mask[near]
    total, count = (x.reshape(-1)[near] * use).sum(dim=1), use.sum(dim=1)
    values = torch.where(count > 0, total / count.clamp(min=1), found.background.reshape(-1)[found.flat])
    out.copy_(x)
    out.view(-1)[found.flat] = values


def _hits(flat: torch.Tensor, shape: tuple[int, ...]) -> list[int]:
    """Per image, the number of 4-connected blobs among the outliers at sorted flat indices ``flat``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n, ny, nx = shape
    index = flat.cpu().numpy()
    if index.size == 0:
        return [0] * n
    yx = index % (ny * nx)
    rows, cols = [], []
    for step, ok in ((1, yx % nx < nx - 1), (nx, yx // nx < ny - 1)):  # right and down neighbours
        j = np.searchsorted(index, index + step)
        j_ok = np.minimum(j, index.size - 1)
        linked = ok & (j < index.size) & (index[j_ok] == index + step)
        rows.append(np.nonzero(linked)[0])
        cols.append(j_ok[linked])
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(r.size, np.int8), (r, c)), shape=(index.size, index.size))
    _, labels = connected_components(graph, directed=False)
    first = np.unique(labels, return_index=True)[1]
    return np.bincount(index[first] // (ny * nx), minlength=n).tolist()


def _settings(options: XraySettings) -> _Settings:
    if options.threshold_sd <= 0 or options.grow_sd <= 0:
        raise ValueError("threshold_sd and grow_sd must be > 0")
    if options.polarity not in ("bright", "both"):
        raise ValueError(f"polarity must be 'bright' or 'both', not {options.polarity!r}")
    half = max(int(options.background_px), int(np.ceil(options.max_radius_px)) + 2)
    return _Settings(options.threshold_sd, options.max_radius_px, options.grow_sd, half, options.polarity)


def _blocks(x: torch.Tensor, work: Callable[[int, int], T]) -> list[T]:
    """``work(i0, i1)`` over blocks of images: one image per task, shared among the torch threads there
    were, each task single-threaded, on CPU; chunks of GPU_CHUNK in turn on a GPU."""
    n = x.shape[0]
    if x.device.type != "cpu":
        return [work(i, min(i + GPU_CHUNK, n)) for i in range(0, n, GPU_CHUNK)]
    with single_threaded_torch() as threads:
        if threads <= 1 or n <= 1:
            return [work(i, i + 1) for i in range(n)]
        with ThreadPoolExecutor(min(threads, n)) as pool:
            return list(pool.map(lambda i: work(i, i + 1), range(n)))


def _as_stack(images: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, bool]:
    x = as_tensor(images)
    single = x.ndim == 2
    x = x[None] if single else x
    return x.to(torch.float32).contiguous(), single


def find_outliers(
    images: torch.Tensor | np.ndarray, *, settings: XraySettings = XRAY_DEFAULTS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Outliers of images against their local background (steps 1–4 of the module's description).

    Parameters
    ----------
    images : torch.Tensor or numpy.ndarray, (n, y, x) or (y, x)
        Images in any unit (counts, or e⁻ per pixel); CPU or GPU.
    settings : XraySettings
        The detection options (thresholds in SD of the local noise, radius and box in pixels, polarity).

    Returns
    -------
    mask : torch.Tensor, bool, shaped as ``images``
        The outlier pixels.
    background : torch.Tensor, float32, shaped as ``images``
        The robust (winsorised) local mean, in the unit of ``images``.
    """
    x, single = _as_stack(images)
    s = _settings(settings)
    inverse_counts = _inverse_counts((x.shape[-2], x.shape[-1]), s.half, x.device)
    mask = torch.zeros(x.shape, dtype=torch.bool, device=x.device)
    background = torch.empty_like(x)

    def work(i0: int, i1: int) -> None:
        found = _detect(x[i0:i1], s, inverse_counts)
        mask[i0:i1].view(-1)[found.flat] = True
        background[i0:i1] = found.background

    _blocks(x, work)
    return (mask[0], background[0]) if single else (mask, background)


def erase_xrays(images: torch.Tensor | np.ndarray, *, settings: XraySettings = XRAY_DEFAULTS) -> XrayResult:
    """Replace hot pixels and X-ray hits of images by the mean of their box's unflagged pixels.

    Parameters
    ----------
    images : torch.Tensor or numpy.ndarray, (n, y, x) or (y, x)
        Images in any unit (counts, or e⁻ per pixel); they stay on their device (CPU or GPU).
    settings : XraySettings
        The detection options, as for :func:`find_outliers`.

    Returns
    -------
    XrayResult
        The erased images (n, y, x) float32 in the unit of ``images``, the outlier mask (n, y, x) bool, and
        per image the pixels replaced and the hits (4-connected blobs of outliers).
    """
    x, _ = _as_stack(images)
    s = _settings(settings)
    inverse_counts = _inverse_counts((x.shape[-2], x.shape[-1]), s.half, x.device)
    out = torch.empty_like(x)
    mask = torch.empty(x.shape, dtype=torch.bool, device=x.device)

    def work(i0: int, i1: int) -> tuple[list[int], list[int]]:
        block = x[i0:i1]
        found = _detect(block, s, inverse_counts)
        _replace(block, found, s.half, out[i0:i1], mask[i0:i1])
        counts = torch.bincount(found.flat // (block.shape[1] * block.shape[2]), minlength=i1 - i0)
        return counts.tolist(), _hits(found.flat, tuple(block.shape))

    parts = _blocks(x, work)
    return XrayResult(
        images=out, mask=mask, pixels_replaced=[c for p in parts for c in p[0]], hits=[h for p in parts for h in p[1]]
    )
