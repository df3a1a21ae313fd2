"""Local refinement of the rotations and positions found by template matching, at the picked voxels.

A global search at step Δ leaves each pick at the nearest of its rotations, up to Δ from the truth. Near a
pick's voxel x₀ the score of any rotation R is cheap: the same locally normalised correlation as the search
(``template_matching``), evaluated at the shifts d ∈ [−s, s]³ only (by FFT on a box of n + 2s voxels),

    score(R, d) = Σ_y a_R(y) T(x₀ + d + y) / √( Σ_y m_R(y) T(x₀ + d + y)² − (Σ_y m_R(y) T(x₀ + d + y))² / Σ m_R ),

with a_R the rotated, Fourier-weighted template normalised under the rotated mask m_R and T the tomogram
filtered as the search filters it. The rotation is refined by a hill climb on the rotation vector ω
(R = exp([ω]ₓ) · R₀): the centre and 14 neighbours (the 6 faces and 8 corners of a cube of spacing h) are
scored, each by its best shift; the best becomes the centre, and h (first Δ / 2) is halved when the centre
stays best. Every pick climbs at once (one batch of rotated templates per step). After each step the position
is the best shift's, refined by the parabola through its neighbours, and the neighbourhood is translated by its
fraction of a voxel (a Fourier phase ramp), so that the next step compares rotations at that position: scored
at the nearest whole voxel only, an asymmetric template turns to make up for the missing fraction (degrees
off for half a voxel).

Arrays: volumes (z, y, x); rotations (k, 3, 3) act on (x, y, z), x_tomogram = R · x_reference.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from tomoforge.methods.fourier import as_tensor, fast_fft_size, frequency_grid_3d
from tomoforge.methods.picking.template_matching import (
    _centred_xyz,
    _normalise_under_mask,
    is_rotation_invariant,
    rotate_volumes,
)


def rotation_vectors_to_matrices(omega: torch.Tensor) -> torch.Tensor:
    """Rodrigues: (…, 3) rotation vectors (radians, about (x, y, z)) to (…, 3, 3) rotation matrices."""
    angle = omega.norm(dim=-1, keepdim=True)
    axis = omega / angle.clamp(min=1e-12)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack(
        [torch.stack([zero, -z, y], -1), torch.stack([z, zero, -x], -1), torch.stack([-y, x, zero], -1)], -2
    )
    s, c = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    eye = torch.eye(3, dtype=omega.dtype, device=omega.device).expand(k.shape)
    return eye + s * k + (1 - c) * (k @ k)


def _neighbours(device: torch.device) -> torch.Tensor:
    """(15, 3) offsets: the centre first, the 6 faces and the 8 corners of a cube around it."""
    faces = torch.cat([torch.eye(3), -torch.eye(3)])
    corners = torch.tensor([[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)]) / 3**0.5
    return torch.cat([torch.zeros(1, 3), faces, corners]).to(device=device, dtype=torch.float64)


def filtered_tomogram(
    tomogram: np.ndarray | torch.Tensor,
    radial_filter: Callable[[tuple[int, int, int]], torch.Tensor] | None,
    device: torch.device,
) -> torch.Tensor:
    """The tomogram minus its mean, padded to a fast FFT size and filtered by ``radial_filter`` (as the search
    filters each tile), cropped back: (z, y, x) float32."""
    tomo = as_tensor(tomogram, torch.float32, device)
    if radial_filter is None:
        return tomo - tomo.mean()
    shape = tuple(int(s) for s in tomo.shape)
    size = tuple(fast_fft_size(s, even=(i == 2)) for i, s in enumerate(shape))
    padded = torch.zeros(size, device=device)
    padded[: shape[0], : shape[1], : shape[2]] = tomo - tomo.mean()
    spectrum = torch.fft.rfftn(padded) * radial_filter(size).to(device)  # type: ignore[arg-type]
    return torch.fft.irfftn(spectrum, s=size)[: shape[0], : shape[1], : shape[2]].contiguous()


def _boxes(tomogram: torch.Tensor, positions_zyx: np.ndarray, size: int, centre: int) -> torch.Tensor:
    """(k, size, size, size) boxes of ``tomogram`` whose voxel ``centre`` is each position; zero outside."""
    pos = torch.as_tensor(np.asarray(positions_zyx, dtype=np.int64).reshape(-1, 3), device=tomogram.device)
    offsets = torch.arange(size, device=tomogram.device) - centre
    idx = [pos[:, a, None] + offsets for a in range(3)]  # (k, size) per axis
    inside = [(i >= 0) & (i < s) for i, s in zip(idx, tomogram.shape)]
    clipped = [i.clamp(0, s - 1) for i, s in zip(idx, tomogram.shape)]
    boxes = tomogram[clipped[0][:, :, None, None], clipped[1][:, None, :, None], clipped[2][:, None, None, :]]
    valid = inside[0][:, :, None, None] & inside[1][:, None, :, None] & inside[2][:, None, None, :]
    return torch.where(valid, boxes, torch.zeros_like(boxes))


class _Local:
    """The picks' neighbourhoods: boxes of n + 2s voxels whose voxel n // 2 + s is the pick, their spectra, and
    the local SD under a spherical mask at each shift d ∈ [−s, s]³ (None for another mask: per rotation).

    ``recentre(offset)`` translates each box by the fraction of a voxel of its pick's current position (Fourier
    phase ramp), so that the integer shifts d score at offset's fraction + d: a rotation is then compared at its
    best position, not at the nearest voxel (where an asymmetric template turns to make up the difference)."""

    def __init__(self, tomogram: torch.Tensor, positions_zyx: np.ndarray, mask: torch.Tensor, shift: int):
        n = mask.shape[-1]
        self.n, self.s, self.size = n, shift, n + 2 * shift
        self.boxes = _boxes(tomogram, positions_zyx, self.size, n // 2 + shift)
        self.mask = mask
        self.fraction = torch.zeros((len(self.boxes), 3), dtype=torch.float64, device=tomogram.device)
        self._transform(self.boxes)

    def _transform(self, boxes: torch.Tensor) -> None:
        self.spectrum = torch.fft.rfftn(boxes, dim=(1, 2, 3))
        self.squares = torch.fft.rfftn(boxes * boxes, dim=(1, 2, 3))
        self.sd: torch.Tensor | None = None
        if is_rotation_invariant(self.mask):
            self.sd = self.local_sd(self.mask[None, None])

    def recentre(self, offset: torch.Tensor) -> None:
        """Translate the boxes so that each pick's ``offset`` (k, 3) (z, y, x voxels from its voxel) lies on the
        voxel grid: their fractions (offset − round(offset)) are kept in ``fraction``."""
        self.fraction = offset - torch.round(offset)
        kz, ky, kx = frequency_grid_3d((self.size,) * 3, 1.0, True, self.boxes.device)
        f = self.fraction.to(torch.float32)[:, :, None, None, None]
        phase = 2 * torch.pi * (kz * f[:, 0] + ky * f[:, 1] + kx * f[:, 2])  # box(y) → box(y + fraction)
        spectrum = torch.fft.rfftn(self.boxes, dim=(1, 2, 3)) * torch.polar(torch.ones_like(phase), phase)
        self._transform(torch.fft.irfftn(spectrum, s=(self.size,) * 3, dim=(1, 2, 3)))

    def correlate(self, spectrum: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Σ_i box_i(y) data(d + s + y) for boxes (k, c, n, n, n) at every shift: (k, c, 2s + 1, 2s + 1, 2s + 1)."""
        k, c, n = boxes.shape[0], boxes.shape[1], self.n
        size, w = self.size, 2 * self.s + 1
        padded = torch.zeros((k, c, size, size, size), device=boxes.device)
        padded[:, :, :n, :n, :n] = boxes
        out = torch.fft.irfftn(
            torch.fft.rfftn(padded, dim=(2, 3, 4)).conj() * spectrum[:, None], s=(size,) * 3, dim=(2, 3, 4)
        )
        return out[:, :, :w, :w, :w]

    def local_sd(self, masks: torch.Tensor) -> torch.Tensor:
        """√(Σ m T² − (Σ m T)² / Σ m) at every shift for masks (k or 1, c, n, n, n)."""
        masks = masks.expand(len(self.spectrum), *masks.shape[1:])
        s1 = self.correlate(self.spectrum, masks)
        s2 = self.correlate(self.squares, masks)
        var = s2 - s1 * s1 / masks.sum((2, 3, 4)).clamp(min=1e-12)[:, :, None, None, None]
        return torch.sqrt(var.clamp(min=1e-30))


def local_scores(
    local: _Local, template: torch.Tensor, mask: torch.Tensor, rotations: torch.Tensor, box_filter: torch.Tensor
) -> torch.Tensor:
    """The locally normalised correlation of each pick's rotations (k, c, 3, 3) at every shift of its
    neighbourhood: (k, c, 2s + 1, 2s + 1, 2s + 1)."""
    k, c = rotations.shape[:2]
    n = template.shape[-1]
    flat = rotations.reshape(k * c, 3, 3)
    xyz = _centred_xyz(n, template.device)
    turned = rotate_volumes(template, flat, xyz)
    turned = torch.fft.irfftn(torch.fft.rfftn(turned, dim=(1, 2, 3)) * box_filter, s=(n, n, n), dim=(1, 2, 3))
    masks = (
        mask[None].expand(k * c, -1, -1, -1) if local.sd is not None else rotate_volumes(mask, flat, xyz).clamp(0, 1)
    )
    a = _normalise_under_mask(turned, masks).reshape(k, c, n, n, n)
    numerator = local.correlate(local.spectrum, a)
    sd = local.sd if local.sd is not None else local.local_sd(masks.reshape(k, c, n, n, n))
    return numerator / sd


def _vertex(scores: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
    """Each map's (k, w, w, w) maximum ``best`` (k, 3) refined along each axis by the parabola through it and its
    neighbours (within ±0.5 voxel; unchanged at a face or where the curve is not concave): (k, 3) float64."""
    rows = torch.arange(len(best), device=best.device)
    w = scores.shape[-1]
    centre = scores[rows, best[:, 0], best[:, 1], best[:, 2]].double()
    out = best.double()
    for axis in range(3):
        lo, hi = best.clone(), best.clone()
        lo[:, axis], hi[:, axis] = (best[:, axis] - 1).clamp(0, w - 1), (best[:, axis] + 1).clamp(0, w - 1)
        a = scores[rows, lo[:, 0], lo[:, 1], lo[:, 2]].double()
        b = scores[rows, hi[:, 0], hi[:, 1], hi[:, 2]].double()
        curve = a - 2 * centre + b
        ok = (best[:, axis] > 0) & (best[:, axis] < w - 1) & (curve < 0)
        out[:, axis] += torch.where(ok, 0.5 * (a - b) / torch.where(ok, curve, -1.0), 0.0).clamp(-0.5, 0.5)
    return out


def _peak(scores: torch.Tensor, fraction: torch.Tensor, shift: int) -> torch.Tensor:
    """The position (k, 3) (z, y, x voxels from each pick's voxel) of the maximum of each local score map
    (k, w, w, w) computed on boxes translated by ``fraction``: the best shift's parabola vertex − s + fraction."""
    w = scores.shape[-1]
    best = torch.stack(torch.unravel_index(scores.reshape(len(scores), -1).argmax(dim=1), (w, w, w)), 1)
    return _vertex(scores, best) - shift + fraction


def refine_picks(
    tomogram: torch.Tensor,
    template: np.ndarray | torch.Tensor,
    positions_zyx: np.ndarray,
    rotations: np.ndarray,
    *,
    step_deg: float,
    mask: np.ndarray | torch.Tensor | None = None,
    box_filter: torch.Tensor | None = None,
    protein_dark: bool = True,
    shift_px: int = 3,
    iterations: int = 8,
    max_voxels: int = 1 << 23,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Refine each pick's rotation and position by a hill climb of the local score (see the module docstring).

    Parameters
    ----------
    tomogram : (z, y, x) tensor
        The tomogram as the search saw it (``filtered_tomogram``), on the device to compute on.
    template : (n, n, n)
        The reference, protein bright, centred on voxel n // 2 (as for ``match_template``).
    positions_zyx : (k, 3) int
        The picks' voxels.
    rotations : (k, 3, 3)
        Their rotations from the search (the starting points).
    step_deg : float
        The search's angular step Δ (°): the first grid spacing is Δ / 2, so that the climb reaches anywhere
        within the search's covering radius.
    mask : (n, n, n), optional
        The correlation mask (default: the search's sphere of radius n // 2 − 1).
    box_filter : (n, n, n // 2 + 1), optional
        The Fourier weight of the template (wedge, CTF, dose, whitening, band-pass), as in the search.
    protein_dark : bool
        The protein is dark in the tomogram: the template is negated.
    shift_px : int
        Positions within this many voxels (each axis) of the pick are scored with every rotation.
    iterations : int
        Climbing steps, 15 rotations each (the centre, 6 faces and 8 corners of a cube of the spacing).
    max_voxels : int
        Voxels of the rotated templates' neighbourhoods held at once (about 24 bytes each).

    Returns
    -------
    (rotations (k, 3, 3) float64, positions (k, 3) float64 (z, y, x voxels, to a fraction of a voxel),
    scores (k,) float64)
        The refined rotations, positions and their local scores.
    """
    dev = tomogram.device
    tmpl = as_tensor(template, torch.float32, dev) * (-1.0 if protein_dark else 1.0)
    n = tmpl.shape[-1]
    if mask is None:
        r2 = _centred_xyz(n, dev).square().sum(-1).reshape(n, n, n)
        m = (r2 <= (n // 2 - 1) ** 2).to(torch.float32)
    else:
        m = as_tensor(mask, torch.float32, dev).clamp(0.0, 1.0)
    filt = torch.ones((n, n, n // 2 + 1), device=dev) if box_filter is None else box_filter.to(dev)
    positions = np.asarray(positions_zyx, dtype=np.int64).reshape(-1, 3)
    k = len(positions)
    out_r = np.asarray(rotations, dtype=np.float64).reshape(-1, 3, 3).copy()
    out_p = positions.astype(np.float64)
    out_s = np.zeros(k)
    grid = _neighbours(dev)
    batch = max(1, max_voxels // (len(grid) * (n + 2 * shift_px) ** 3))
    for lo in range(0, k, batch):
        hi = min(k, lo + batch)
        local = _Local(tomogram, positions[lo:hi], m, shift_px)
        current = torch.as_tensor(out_r[lo:hi], dtype=torch.float64, device=dev)
        spacing = torch.full((hi - lo,), np.deg2rad(step_deg) / 2, dtype=torch.float64, device=dev)
        rows = torch.arange(hi - lo, device=dev)
        for _ in range(max(1, iterations)):
            candidates = rotation_vectors_to_matrices(grid[None] * spacing[:, None, None]) @ current[:, None]
            scores = local_scores(local, tmpl, m, candidates.to(torch.float32), filt)
            arg = scores.reshape(hi - lo, len(grid), -1).amax(-1).argmax(dim=1)
            current = candidates[rows, arg]
            spacing = torch.where(arg == 0, spacing / 2, spacing)  # the centre stayed best: closer
            local.recentre(_peak(scores[rows, arg], local.fraction, shift_px))
        final = local_scores(local, tmpl, m, current[:, None].to(torch.float32), filt)[:, 0]  # (k, w, w, w)
        out_r[lo:hi] = current.cpu().numpy()
        out_p[lo:hi] = positions[lo:hi] + _peak(final, local.fraction, shift_px).cpu().numpy()
        out_s[lo:hi] = final.reshape(hi - lo, -1).amax(1).double().cpu().numpy()
    return out_r, out_p, out_s
