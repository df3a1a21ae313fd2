"""Beam-induced motion: global and patch-based local alignment of movie frames, and their sum.

Shifts ``s`` (y, x) in pixels of the input frames: the content of frame i is displaced by ``s_i``
relative to the reference frame (``s_ref = 0``); aligning a frame translates it by ``−s_i``.

Global alignment (MotionCor2 / unblur style, Zheng et al. 2017; Grant & Grigorieff 2015): spectra are
weighted by the B-factor envelope exp(−B·k²/4) (k in 1/Å, B in Å²), Fourier-cropped to where that
envelope is above 1 %, and each frame is cross-correlated with the sum of all *other* aligned frames
(leaving the frame out removes its own noise from the reference, which matters at the ~0.1–0.5 e/Å²
per frame of tomography). The peak of each correlation gives the new shift (sub-pixel from a
3-point Gaussian fit); iterations stop when no shift changes by more than ``tolerance_px``.

Local motion: the globally aligned frames are cut into a grid of patches, each aligned the same way
(all patches at once), and the residual shifts are fitted by a smooth polynomial in (x, y, t)
(MotionCor2's model: t, t², t³ times 1, x, x², y, y², xy); frames are resampled along that field.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from tomoforge.methods.dose import exposure_attenuation
from tomoforge.methods.fourier import as_tensor, frequency_grid_2d, fourier_shift_2d, spatial_frequency_2d


# --- global alignment -----------------------------------------------------------------------------
def alignment_crop(shape: tuple[int, int], pixel_size_A: float, bfactor_A2: float,
                   binning: float | None = None) -> tuple[int, int]:
    """(h, w) of the Fourier-cropped grid the alignment runs on (even sizes; ``binning`` overrides)."""
    if binning is None:
        k_cut = math.sqrt(4 * math.log(100.0) / bfactor_A2) if bfactor_A2 > 0 else 1.0 / (2 * pixel_size_A)
        binning = max(1.0, (1.0 / (2 * pixel_size_A)) / k_cut)
    return tuple(max(16, 2 * int(round(n / binning / 2))) if n / binning >= 16 else n for n in shape)  # type: ignore


def _crop_spectrum(spectrum: torch.Tensor, shape: tuple[int, int], crop: tuple[int, int]) -> torch.Tensor:
    """Low frequencies of an rfft2 spectrum (..., ny, nx//2+1) as the rfft2 grid of ``crop`` (h, w)."""
    ny, _ = shape
    h, w = crop
    if (h, w) == tuple(shape):
        return spectrum
    top = spectrum[..., : h // 2, : w // 2 + 1]
    bottom = spectrum[..., ny - h // 2:, : w // 2 + 1]
    return torch.cat([top, bottom], dim=-2)


def _subpixel(cc: torch.Tensor, index: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Sub-pixel offset of the peak along ``dim`` from the 3 values around it (Gaussian fit)."""
    def at(offset: int) -> torch.Tensor:
        return torch.gather(cc, dim, ((index + offset) % size).unsqueeze(dim)).squeeze(dim)

    minus, centre, plus = at(-1), at(0), at(1)
    positive = (minus > 0) & (centre > 0) & (plus > 0)
    lm, lc, lp = (torch.log(v.clamp(min=1e-30)) for v in (minus, centre, plus))
    num = torch.where(positive, lm - lp, minus - plus)
    den = torch.where(positive, lm - 2 * lc + lp, minus - 2 * centre + plus)
    delta = torch.where(den < 0, 0.5 * num / den.where(den != 0, torch.ones_like(den)), torch.zeros_like(den))
    return delta.clamp(-0.5, 0.5)


def _peaks(cc: torch.Tensor, max_shift: float | None) -> torch.Tensor:
    """Sub-pixel (y, x) of the maximum of each correlation map (..., h, w), wrapped to ±size/2."""
    h, w = cc.shape[-2:]
    if max_shift is not None:
        dy = torch.fft.fftfreq(h, 1.0 / h, device=cc.device)
        dx = torch.fft.fftfreq(w, 1.0 / w, device=cc.device)
        far = (dy[:, None] ** 2 + dx[None, :] ** 2) > max_shift ** 2
        cc = cc.masked_fill(far, float("-inf"))
    flat = cc.flatten(-2).argmax(dim=-1)
    iy, ix = flat // w, flat % w
    cc = torch.where(torch.isfinite(cc), cc, torch.zeros_like(cc))
    rows = torch.gather(cc, -2, iy[..., None, None].expand(*iy.shape, 1, w)).squeeze(-2)  # (..., w)
    cols = torch.gather(cc, -1, ix[..., None, None].expand(*ix.shape, h, 1)).squeeze(-1)  # (..., h)
    fy = iy.to(torch.float32) + _subpixel(cols, iy, h, -1)
    fx = ix.to(torch.float32) + _subpixel(rows, ix, w, -1)
    fy = torch.where(fy > h / 2, fy - h, fy)
    fx = torch.where(fx > w / 2, fx - w, fx)
    return torch.stack([fy, fx], dim=-1)


def align_spectra(spectra: torch.Tensor, shape: tuple[int, int], max_shift_px: float | None = None,
                  iterations: int = 10, tolerance_px: float = 0.02) -> torch.Tensor:
    """Shifts (..., n, 2) in pixels of ``shape`` from weighted rfft2 spectra (..., n, h, w//2+1).

    Each frame against the sum of the other aligned frames, iterated (see the module docstring).
    """
    ky, kx = frequency_grid_2d(shape, 1.0, True, spectra.device)
    shifts = torch.zeros(*spectra.shape[:-2], 2, device=spectra.device)
    for _ in range(iterations):
        phase = 2 * torch.pi * (ky * shifts[..., 0, None, None] + kx * shifts[..., 1, None, None])
        aligned = spectra * torch.polar(torch.ones_like(phase), phase)
        reference = aligned.sum(dim=-3, keepdim=True) - aligned
        cc = torch.fft.irfft2(spectra * reference.conj(), s=shape)
        new = _peaks(cc, max_shift_px)
        change = float((new - shifts).abs().max()) if new.numel() else 0.0
        shifts = new
        if change < tolerance_px:
            break
    return shifts


def weighted_spectra(frames: torch.Tensor, pixel_size_A: float, bfactor_A2: float,
                     crop: tuple[int, int]) -> torch.Tensor:
    """rfft2 of frames (..., n, y, x), mean removed, cropped to ``crop`` and B-factor weighted."""
    shape = tuple(frames.shape[-2:])
    spectra = torch.fft.rfft2(frames - frames.mean(dim=(-2, -1), keepdim=True))
    spectra = _crop_spectrum(spectra, shape, crop)
    k = spatial_frequency_2d(crop, pixel_size_A * shape[-1] / crop[-1], True, frames.device)
    return spectra * torch.exp(-bfactor_A2 * k * k / 4)


def without_hot_pixels(frames, threshold_sd: float = 6.0) -> torch.Tensor:
    """A copy of frames (n, y, x) whose hot/dead pixels hold each frame's mean.

    Such pixels are fixed on the detector, so they do not move with the specimen and pull the
    alignment towards zero shift. They are found in the frame sum as outliers against the median of
    their 8 neighbours, in robust standard deviations (MAD, at least the Poisson σ of the sum).
    For estimating shifts only, not for the sums.
    """
    frames = as_tensor(frames)
    total = frames.sum(0)
    padded = torch.nn.functional.pad(total[None, None], (1, 1, 1, 1), mode="reflect")
    patches = torch.nn.functional.unfold(padded, 3)[0]  # (9, y*x); row 4 is the pixel itself
    neighbours = patches[[0, 1, 2, 3, 5, 6, 7, 8]].median(dim=0).values.reshape(total.shape)
    residual = (total - neighbours).flatten()
    sample = residual[:: max(1, residual.numel() // 262144)]
    centre = sample.median()
    sigma = torch.maximum(1.4826 * (sample - centre).abs().median(), total.mean().clamp(min=1e-6).sqrt())
    mask = ((residual - centre).abs() > threshold_sd * sigma).reshape(total.shape)
    out = frames.clone()
    out[:, mask] = frames.mean(dim=(-2, -1))[:, None].to(out.dtype)
    return out


def estimate_global_shifts(frames, pixel_size_A: float, bfactor_A2: float = 1500.0, max_shift_A: float | None = None,
                           iterations: int = 10, tolerance_px: float = 0.02, reference_frame: int = 0,
                           binning: float | None = None) -> torch.Tensor:
    """Per-frame shifts (n, 2) (y, x) in input pixels of a movie (n, y, x); ``s[reference_frame] = 0``."""
    frames = as_tensor(frames)
    shape = tuple(frames.shape[-2:])
    crop = alignment_crop(shape, pixel_size_A, bfactor_A2, binning)
    scale = torch.tensor([shape[0] / crop[0], shape[1] / crop[1]], device=frames.device)
    spectra = weighted_spectra(frames, pixel_size_A, bfactor_A2, crop)
    max_shift = None if max_shift_A is None else max_shift_A / pixel_size_A / float(scale.max())
    shifts = align_spectra(spectra, crop, max_shift, iterations, tolerance_px) * scale
    return shifts - shifts[..., reference_frame: reference_frame + 1, :]


# --- local (patch) model --------------------------------------------------------------------------
def _poly_terms(y: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """MotionCor2 terms: (t, t², t³) × (1, x, x², y, y², xy); coordinates normalised to ~[−1, 1]."""
    spatial = torch.stack([torch.ones_like(x), x, x * x, y, y * y, x * y], dim=-1)
    temporal = torch.stack([t, t * t, t * t * t], dim=-1)
    return (temporal[..., :, None] * spatial[..., None, :]).flatten(-2)


@dataclass
class LocalMotion:
    """Smooth residual motion d(y, x, t) (pixels) fitted to patch shifts; see ``displacement``."""

    shape: tuple[int, int]
    n_frames: int
    reference_frame: int
    coefficients: torch.Tensor  # (18, 2)
    patch_centres: torch.Tensor = field(repr=False)  # (P, 2) (y, x) pixels
    patch_shifts: torch.Tensor = field(repr=False)  # (P, n, 2) measured residual shifts
    rms_fit_px: float = 0.0

    def _normalised(self, y: torch.Tensor, x: torch.Tensor, frame: torch.Tensor) -> tuple:
        ny, nx = self.shape
        t = (frame.to(torch.float32) - self.reference_frame) / max(self.n_frames - 1, 1)
        return 2 * y / ny - 1, 2 * x / nx - 1, t

    def displacement(self, y: torch.Tensor, x: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        """Residual shift (..., 2) (y, x) in pixels at positions (y, x) of frame index ``frame``."""
        terms = _poly_terms(*self._normalised(y, x, frame))
        return terms @ self.coefficients


def fit_local_motion(centres: torch.Tensor, shifts: torch.Tensor, shape: tuple[int, int],
                     reference_frame: int = 0) -> LocalMotion:
    """Least-squares fit of the polynomial model to patch shifts (P, n, 2) at ``centres`` (P, 2)."""
    p, n, _ = shifts.shape
    frame = torch.arange(n, device=shifts.device).expand(p, n)
    y = centres[:, 0, None].expand(p, n)
    x = centres[:, 1, None].expand(p, n)
    model = LocalMotion(shape, n, reference_frame, torch.zeros(18, 2), centres, shifts)
    terms = _poly_terms(*model._normalised(y, x, frame)).reshape(p * n, -1).to(torch.float64)
    target = (shifts - shifts[:, reference_frame: reference_frame + 1]).reshape(p * n, 2).to(torch.float64)
    coefficients = torch.linalg.lstsq(terms, target).solution.to(torch.float32)
    model.coefficients = coefficients
    model.rms_fit_px = float(((terms.float() @ coefficients - target.float()) ** 2).sum(-1).mean().sqrt())
    return model


def patch_grid(shape: tuple[int, int], patches: tuple[int, int], overlap: float = 0.5
               ) -> tuple[torch.Tensor, tuple[int, int]]:
    """Top-left corners (P, 2) and size (h, w) of a grid of overlapping patches covering ``shape``."""
    ny, nx = shape
    py, px = patches
    h = 2 * int(ny / (py - (py - 1) * overlap) / 2) if py > 1 else ny
    w = 2 * int(nx / (px - (px - 1) * overlap) / 2) if px > 1 else nx
    ys = torch.linspace(0, ny - h, py).round().long() if py > 1 else torch.zeros(1, dtype=torch.long)
    xs = torch.linspace(0, nx - w, px).round().long() if px > 1 else torch.zeros(1, dtype=torch.long)
    corners = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)
    return corners, (h, w)


def estimate_local_motion(aligned_frames: torch.Tensor, pixel_size_A: float, patches: tuple[int, int] = (5, 5),
                          bfactor_A2: float = 500.0, max_shift_A: float | None = None,
                          reference_frame: int = 0, binning: float | None = None) -> LocalMotion:
    """Residual local motion of globally aligned frames (n, y, x), fitted over a grid of patches."""
    shape = tuple(aligned_frames.shape[-2:])
    corners, (h, w) = patch_grid(shape, patches)
    rows = corners[:, 0, None] + torch.arange(h)  # (P, h)
    cols = corners[:, 1, None] + torch.arange(w)  # (P, w)
    cut = aligned_frames[:, rows[:, :, None], cols[:, None, :]].transpose(0, 1)  # (P, n, h, w)
    shifts = estimate_global_shifts(cut, pixel_size_A, bfactor_A2, max_shift_A, reference_frame=reference_frame,
                                    binning=binning)
    centres = corners.to(torch.float32) + torch.tensor([h / 2, w / 2])
    return fit_local_motion(centres, shifts, shape, reference_frame)


def apply_local_motion(frames: torch.Tensor, model: LocalMotion, chunk: int = 4) -> torch.Tensor:
    """Frames (n, y, x) resampled in place along the local field: frame_i(p) ← frame_i(p + d_i(p))."""
    ny, nx = frames.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(ny, dtype=torch.float32), torch.arange(nx, dtype=torch.float32),
                            indexing="ij")
    for start in range(0, frames.shape[0], chunk):
        index = torch.arange(start, min(start + chunk, frames.shape[0]))
        d = model.displacement(yy, xx, index[:, None, None].expand(-1, ny, nx))  # (c, y, x, 2)
        gy = 2 * (yy + d[..., 0]) / (ny - 1) - 1
        gx = 2 * (xx + d[..., 1]) / (nx - 1) - 1
        grid = torch.stack([gx, gy], dim=-1)
        frames[index] = F.grid_sample(frames[index, None], grid, mode="bicubic", padding_mode="reflection",
                                      align_corners=True)[:, 0]
    return frames


# --- sums -------------------------------------------------------------------------------------------
def shift_frames_(frames: torch.Tensor, shifts_px: torch.Tensor) -> torch.Tensor:
    """Translate each frame (n, y, x) by −shift (in place, Fourier, sub-pixel exact, periodic)."""
    for i in range(frames.shape[0]):
        frames[i] = fourier_shift_2d(frames[i], -shifts_px[i])
    return frames


def dose_weights(n_frames: int, frame_dose_e_A2: float, pre_exposure_e_A2: float, shape: tuple[int, int],
                 pixel_size_A: float, voltage_kV: float = 300.0) -> torch.Tensor:
    """Per-frame rfft2 weights (n, y, x//2+1): q_i(k) · √n / √(Σ_j q_j(k)²).

    q_i = Grant & Grigorieff attenuation at the exposure after frame i (pre + (i+1) · frame dose).
    The weights keep the noise power of a plain sum at every k and the sum's mean (q = 1 at k = 0).
    """
    k = spatial_frequency_2d(shape, pixel_size_A, True).to(torch.float64)
    q = torch.stack([exposure_attenuation(k, pre_exposure_e_A2 + (i + 1) * frame_dose_e_A2, voltage_kV)
                     for i in range(n_frames)])
    return (q * math.sqrt(n_frames) / q.pow(2).sum(0).sqrt()).to(torch.float32)


@dataclass
class FrameSums:
    """Sum of the selected frames, and of their odd (1st, 3rd…) and even (2nd, 4th…) frames."""

    total: torch.Tensor
    odd: torch.Tensor
    even: torch.Tensor


def sum_frames(aligned: torch.Tensor, first: int = 0, last: int | None = None,
               weights: torch.Tensor | None = None) -> FrameSums:
    """Sums of aligned frames ``first``..``last`` (0-based, inclusive); ``weights`` (n, y, x//2+1) optional."""
    last = aligned.shape[0] - 1 if last is None else last
    ny, nx = aligned.shape[-2:]
    if weights is None:
        odd = aligned[first: last + 1: 2].sum(0)
        even = aligned[first + 1: last + 1: 2].sum(0)
        return FrameSums(odd + even, odd, even)
    spectra = [torch.zeros(ny, nx // 2 + 1, dtype=torch.complex64) for _ in range(2)]
    for j, i in enumerate(range(first, last + 1)):
        spectra[j % 2] += torch.fft.rfft2(aligned[i]) * weights[i]
    odd, even = (torch.fft.irfft2(s, s=(ny, nx)) for s in spectra)
    return FrameSums(odd + even, odd, even)
