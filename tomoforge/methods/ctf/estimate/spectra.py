"""Tiled power spectra of a tilt image, grouped into strips parallel to the tilt axis, and their
average on a polar (angle × radius) grid of the rfft half-plane.

Every pixel of a tile's rfft power spectrum goes to one (angle, radius) bin: angles cover 180°
(the spectrum is centro-symmetric), radii are 1 px wide, so nothing is thrown away and the fit
works on n_angles × box/2 numbers per strip instead of box² / 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from tomoforge.methods.align.filters import edge_taper
from tomoforge.methods.fourier import as_tensor, frequency_grid_2d


def tile_origins(size: int, box: int, overlap: float) -> torch.Tensor:
    """Start indices (px) of tiles of ``box`` along an axis of ``size``, covering it evenly, neighbours
    overlapping by about ``overlap`` (fraction of the box)."""
    if size <= box:
        return torch.zeros(1, dtype=torch.long)
    step = box * (1.0 - overlap)
    n = int(math.ceil((size - box) / step)) + 1
    return torch.linspace(0, size - box, n).round().long()


def gaussian_blur(images: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Images (..., y, x) convolved (periodically, by FFT) with a Gaussian of ``sigma_px``."""
    ky, kx = frequency_grid_2d((images.shape[-2], images.shape[-1]), 1.0, True, images.device)
    gain = torch.exp(-2 * math.pi**2 * sigma_px**2 * (ky * ky + kx * kx))
    return torch.fft.irfft2(torch.fft.rfft2(images) * gain, s=tuple(images.shape[-2:]))


def sampled_median(values: torch.Tensor, samples: int = 1 << 16) -> torch.Tensor:
    """The median of about ``samples`` evenly strided elements of ``values`` (a robust level of an image:
    a full sort of 10⁶ pixels costs more than the rest of its spectrum)."""
    flat = values.reshape(-1)
    return flat[:: max(1, flat.numel() // samples)].median()


def erase_high_contrast(
    image: torch.Tensor, threshold_sd: float = 6.0, grow_px: int = 6, max_fraction: float = 0.03
) -> torch.Tensor:
    """``image`` with its high-contrast features (gold beads, X-rays, hot or dead pixels) replaced by the
    local mean around them, with soft edges.

    A fully absorbing bead is a dark disc whose Airy rings are spaced like Thon rings (1 / diameter)
    and can outweigh them: a feature is every pixel whose low-passed value (σ = 2 px) lies more than
    ``threshold_sd`` robust SDs from the median and among the ``max_fraction`` most deviant pixels (so
    that a noise-free image keeps its specimen), grown by ``grow_px`` (the bead's edge and fringes).
    """
    image = as_tensor(image)
    smooth = gaussian_blur(image, 2.0)
    dev = (smooth - sampled_median(smooth)).abs()
    sd = 1.4826 * sampled_median(dev)
    sample = dev.reshape(-1)[:: max(1, dev.numel() // 1_000_000)]
    rare = sample.kthvalue(max(1, int(round((1 - max_fraction) * sample.numel())))).values
    mask = (dev > torch.maximum(threshold_sd * sd, rare)).float()
    if not bool(mask.any()):
        return image
    pool = torch.nn.functional.max_pool2d
    k = 2 * grow_px + 1
    mask = pool(pool(mask[None, None], (1, k), stride=1, padding=(0, grow_px)), (k, 1), stride=1, padding=(grow_px, 0))[
        0, 0
    ]
    keep = 1 - mask
    soft = gaussian_blur(mask, 2.0)
    near, local = gaussian_blur(torch.stack([keep, image * keep]), 20.0).unbind(0)
    weight = torch.maximum((2 * soft).clamp(0, 1), mask)
    weight = torch.where(weight < 1e-3, torch.zeros_like(weight), weight)  # far pixels stay as they were
    fill = local / near.clamp(min=1e-3)
    return image * (1 - weight) + fill * weight


def _tiles(image: torch.Tensor, box: int, overlap: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The tiles (n, box, box) of ``image`` (y, x) and their centres (n, 2) as (y, x) px from the image
    centre (pixel n // 2)."""
    ny, nx = image.shape[-2:]
    oy, ox = tile_origins(ny, box, overlap).to(image.device), tile_origins(nx, box, overlap).to(image.device)
    # a copy per tile (tens of them, contiguous blocks): an index gather of box² pixels per tile costs more
    tiles = torch.stack([image[y : y + box, x : x + box] for y in oy.tolist() for x in ox.tolist()])
    oy, ox = [o.reshape(-1) for o in torch.meshgrid(oy, ox, indexing="ij")]
    centres = torch.stack([oy + box / 2 - ny // 2, ox + box / 2 - nx // 2], dim=-1).to(torch.float32)
    return tiles, centres


def tile_power_spectra(
    image: torch.Tensor | np.ndarray, box: int, overlap: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Power spectra (n, box, box//2 + 1) of the tiles of ``image`` (y, x), each tile mean-subtracted and
    edge-tapered, and the tile centres (n, 2) as (y, x) in px from the image centre (pixel n // 2)."""
    image = as_tensor(image)
    tiles, centres = _tiles(image, box, overlap)
    tiles = tiles - tiles.mean(dim=(-2, -1), keepdim=True)
    tiles = tiles * edge_taper((box, box), max(box // 32, 2), image.device)
    power = torch.fft.rfft2(tiles).abs().square() / float(box * box)
    return power, centres


def tile_content_centres(
    image: torch.Tensor | np.ndarray, box: int, overlap: float, pixel_size_A: float, low_A: float, high_A: float
) -> torch.Tensor:
    """Where each tile's rings come from: the centroid (y, x px from the image centre, as
    ``tile_power_spectra``'s centres) of the image's power in the fit band (``low_A``–``high_A``), its
    median over the image counted as spread evenly (ice and shot noise) and only the excess (proteins,
    membranes) as located. In a tilted image a tile's content sits at heights that change across the tile;
    a vesicle near one edge rings at that edge's defocus, not the tile centre's."""
    image = as_tensor(image).to(torch.float32)
    ny, nx = image.shape[-2:]
    ky, kx = frequency_grid_2d((ny, nx), pixel_size_A, True, image.device)
    k = torch.sqrt(ky * ky + kx * kx)
    band = (k >= 1.0 / low_A) & (k <= min(1.0 / high_A, 0.4 / pixel_size_A))
    power = torch.fft.irfft2(torch.fft.rfft2(image - image.mean()) * band, s=(ny, nx)).square()
    level = sampled_median(power)
    tiles, centres = _tiles((power - level).clamp(min=0), box, overlap)
    total = (tiles.sum(dim=(-2, -1)) + level * box * box).clamp(min=1e-30)  # blank: geometric centres
    rel = torch.arange(box, device=image.device, dtype=torch.float32) - (box - 1) / 2  # offsets from the centre
    cy = (tiles.sum(dim=-1) * rel).sum(dim=-1) / total
    cx = (tiles.sum(dim=-2) * rel).sum(dim=-1) / total
    return centres + torch.stack([cy, cx], dim=-1)


def distance_from_axis_px(
    centres_yx: torch.Tensor, tilt_axis_angle_deg: float, shift_xy_px: tuple[float, float] = (0.0, 0.0)
) -> torch.Tensor:
    """Signed distance (px) of points (y, x) from the tilt axis, perpendicular to it in the image plane.

    The axis runs at ``tilt_axis_angle_deg`` from the image Y axis, counter-clockwise, through the image
    centre + ``shift_xy_px`` (where the tomogram centre projects); the distance is positive along
    (cos φ, sin φ) in (x, y), the image of the tomogram X axis (conventions: x_image = Rz(φ) Ry(β) x).
    """
    phi = math.radians(tilt_axis_angle_deg)
    return (centres_yx[:, 1] - shift_xy_px[0]) * math.cos(phi) + (centres_yx[:, 0] - shift_xy_px[1]) * math.sin(phi)


def height_above_axis_A(distance_px: torch.Tensor, tilt_angle_deg: float, pixel_size_A: float) -> torch.Tensor:
    """Height (Å, towards the source) of the specimen mid-plane at signed distance ``distance_px`` from the
    tilt axis: the tomogram point (X, Y, 0) has height −X sin β and distance d = X cos β (x_image =
    Rz(φ) Ry(β) x, CONVENTIONS), so h = −d · px · tan β; the defocus there is ΔF + h."""
    return -math.tan(math.radians(tilt_angle_deg)) * pixel_size_A * distance_px


def group_into_strips(
    power: torch.Tensor, distance_px: torch.Tensor, strip_px: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Average the tile spectra whose distance from the axis falls in the same ``strip_px`` wide strip
    (inf: one strip): (strip spectra (s, ...), mean distance (s,) px)."""
    if math.isinf(strip_px):
        key = torch.zeros(distance_px.shape, dtype=torch.long, device=distance_px.device)
    else:
        key = torch.round(distance_px / strip_px).long()
    uniq, inverse = torch.unique(key, return_inverse=True)
    counts = torch.zeros(len(uniq), device=power.device).index_add_(0, inverse, torch.ones_like(distance_px))
    sums = torch.zeros((len(uniq),) + power.shape[1:], device=power.device, dtype=power.dtype)
    sums.index_add_(0, inverse, power)
    dist = torch.zeros(len(uniq), device=power.device).index_add_(0, inverse, distance_px.float())
    shape = (-1,) + (1,) * (power.ndim - 1)
    return sums / counts.reshape(shape), dist / counts


@dataclass
class PolarGrid:
    """Assignment of the rfft pixels of a box to (angle, radius) bins.

    ``index`` (box, box//2+1): flat bin a · n_radii + r, or −1 (beyond Nyquist); ``k_A`` (n_radii,):
    mean |k| (1/Å) of each radius bin; ``theta`` (n_angles,): bin centre angle (rad) of k from the
    image X axis, in [−π/2, π/2); ``counts`` (n_angles, n_radii): pixels per bin.
    """

    box: int
    pixel_size_A: float
    n_angles: int
    index: torch.Tensor
    k_A: torch.Tensor
    theta: torch.Tensor
    counts: torch.Tensor

    @property
    def n_radii(self) -> int:
        return int(self.k_A.shape[0])

    @classmethod
    def build(
        cls, box: int, pixel_size_A: float, n_angles: int = 36, device: torch.device | str | None = None
    ) -> PolarGrid:
        ky, kx = frequency_grid_2d((box, box), 1.0, True, device)
        ky, kx = ky.to(torch.float64), kx.to(torch.float64)
        r = torch.sqrt(ky * ky + kx * kx) * box
        n_radii = box // 2 + 1
        ri = torch.round(r).long()
        theta = torch.atan2(ky, kx)
        theta = torch.remainder(theta + math.pi / 2, math.pi)  # [0, π): angle + 90°
        ai = torch.clamp((theta / math.pi * n_angles).long(), max=n_angles - 1)
        inside = ri < n_radii
        index = torch.where(inside, ai * n_radii + ri, torch.full_like(ri, -1))
        flat = index[inside]
        counts = torch.zeros(n_angles * n_radii, dtype=torch.float64, device=device)
        counts.index_add_(0, flat, torch.ones_like(flat, dtype=torch.float64))
        rsum = torch.zeros(n_radii, dtype=torch.float64, device=device).index_add_(0, ri[inside], r[inside])
        rcount = torch.zeros(n_radii, dtype=torch.float64, device=device).index_add_(
            0, ri[inside], torch.ones_like(r[inside])
        )
        k = rsum / rcount.clamp(min=1) / (box * pixel_size_A)
        centres = (torch.arange(n_angles, dtype=torch.float64, device=device) + 0.5) / n_angles * math.pi - math.pi / 2
        return cls(box, pixel_size_A, n_angles, index, k, centres, counts.reshape(n_angles, n_radii))

    def average(self, spectra: torch.Tensor) -> torch.Tensor:
        """Mean of ``spectra`` (..., box, box//2+1) in each bin: (..., n_angles, n_radii). A bin with no
        pixel (near the centre) takes the mean of its radius; the DC bin takes radius 1's values."""
        lead = spectra.shape[:-2]
        flat = spectra.reshape(-1, spectra.shape[-2] * spectra.shape[-1]).to(torch.float64)
        idx = self.index.reshape(-1)
        keep = idx >= 0
        sums = torch.zeros(flat.shape[0], self.n_angles * self.n_radii, dtype=torch.float64, device=spectra.device)
        sums.index_add_(1, idx[keep], flat[:, keep])
        mean = (sums / self.counts.reshape(1, -1).clamp(min=1)).reshape(-1, self.n_angles, self.n_radii)
        filled = self.counts > 0
        ring = (mean * filled).sum(-2, keepdim=True) / filled.sum(-2, keepdim=True).clamp(min=1)
        mean = torch.where(filled, mean, ring)
        mean[..., 0] = mean[..., 1]
        return mean.reshape(lead + (self.n_angles, self.n_radii))
