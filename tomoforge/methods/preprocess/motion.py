"""Beam-induced motion: global and patch-based local alignment of movie frames, and their sum.

Shifts ``s`` (y, x) in pixels of the input frames: the content of frame i is displaced by ``s_i``
relative to the reference frame (``s_ref = 0``); aligning a frame translates it by ``−s_i``.

Global alignment (MotionCor2 / unblur style, Zheng et al. 2017; Grant & Grigorieff 2015): spectra are
weighted by the B-factor envelope exp(−B·k²/4) (k in 1/Å, B in Å²), Fourier-cropped to where the
weight of a correlation, exp(−B·k²/2), is above ``CROP_WEIGHT`` (the rest is mostly shot noise at
tomography's dose per frame; the alignment runs on, e.g., 240² instead of 1024²), and each frame is
cross-correlated with the sum of all *other* aligned frames (leaving the frame out removes its own
noise from the reference, which matters at the ~0.1–0.5 e/Å² per frame of tomography). The peak of
each correlation gives the new shift (sub-pixel from a 3-point Gaussian fit); iterations stop when no
shift changes by more than ``tolerance_px``. Hot pixels (fixed on the detector, they pull towards zero
shift) are masked by correcting the cropped spectra, so one rfft per frame serves the estimation and
the aligned sums (phase ramps, dose weights, Fourier-crop binning: ``aligned_sums``).

Local motion: the globally aligned frames are cut into a grid of patches, each aligned the same way
(all patches at once), and the residual shifts are fitted by a smooth polynomial in (x, y, t)
(MotionCor2's model: t, t², t³ times 1, x, x², y, y², xy); frames are resampled along that field.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from tomoforge.methods.fourier import as_tensor, fast_fft_size, spatial_frequency_2d
from tomoforge.methods.preprocess.dose import critical_exposure
from tomoforge.methods.preprocess.settings import GLOBAL_BFACTOR_A2, PATCH_BFACTOR_A2

# --- global alignment -----------------------------------------------------------------------------
#: the alignment grid keeps the frequencies where the cross-correlation weight exp(−B·k²/2) is above this
CROP_WEIGHT = 0.1
#: up to this many defect pixels are corrected in Fourier space (else the masked frames are transformed)
MAX_DEFECTS = 512


def alignment_crop(
    shape: tuple[int, int], pixel_size_A: float, bfactor_A2: float, *, binning: float | None = None
) -> tuple[int, int]:
    """(h, w) of the Fourier-cropped grid the alignment runs on (even sizes; ``binning`` overrides).

    Without ``binning``: up to the frequency where the weight of the correlation of two B-weighted
    spectra, exp(−B·k²/2), falls to ``CROP_WEIGHT`` (beyond it, at tomography's dose per frame,
    the frames hold mostly shot noise); never finer than the input.
    """
    if binning is None:
        k_cut = math.sqrt(2 * math.log(1 / CROP_WEIGHT) / bfactor_A2) if bfactor_A2 > 0 else 1.0 / (2 * pixel_size_A)
        binning = max(1.0, (1.0 / (2 * pixel_size_A)) / k_cut)
    return tuple(
        min(n, fast_fft_size(max(16, 2 * int(round(n / binning / 2))), even=True)) if n / binning >= 16 else n
        for n in shape
    )  # type: ignore


def _crop_spectrum(spectrum: torch.Tensor, shape: tuple[int, int], crop: tuple[int, int]) -> torch.Tensor:
    """Low frequencies of an rfft2 spectrum (..., ny, nx//2+1) as the rfft2 grid of ``crop`` (h, w)."""
    ny, _ = shape
    h, w = crop
    if (h, w) == tuple(shape):
        return spectrum
    top = spectrum[..., : (h + 1) // 2, : w // 2 + 1]
    bottom = spectrum[..., ny - h // 2 :, : w // 2 + 1]
    return torch.cat([top, bottom], dim=-2)


def _ramps(h: int, w: int, shifts_px: torch.Tensor, period: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Separable rfft-grid factors (..., h) and (..., w//2+1) of exp(+2πi k·s): they translate by −s.

    ``period`` (y, x): the image size, in the units of ``shifts_px``, that the grid's frequencies refer to.
    """
    ky = torch.fft.fftfreq(h, d=period[0] / h, device=shifts_px.device)
    kx = torch.fft.rfftfreq(w, d=period[1] / w, device=shifts_px.device)
    py = 2 * torch.pi * ky * shifts_px[..., 0, None]
    px = 2 * torch.pi * kx * shifts_px[..., 1, None]
    return torch.polar(torch.ones_like(py), py), torch.polar(torch.ones_like(px), px)


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
    searched = cc
    if max_shift is not None:
        dy = torch.fft.fftfreq(h, 1.0 / h, device=cc.device)
        dx = torch.fft.fftfreq(w, 1.0 / w, device=cc.device)
        far = (dy[:, None] ** 2 + dx[None, :] ** 2) > max_shift**2
        searched = cc.masked_fill(far, float("-inf"))
    flat = searched.flatten(-2).argmax(dim=-1)
    iy, ix = flat // w, flat % w
    rows = torch.gather(cc, -2, iy[..., None, None].expand(*iy.shape, 1, w)).squeeze(-2)  # (..., w)
    cols = torch.gather(cc, -1, ix[..., None, None].expand(*ix.shape, h, 1)).squeeze(-1)  # (..., h)
    fy = iy.to(torch.float32) + _subpixel(cols, iy, h, -1)
    fx = ix.to(torch.float32) + _subpixel(rows, ix, w, -1)
    fy = torch.where(fy > h / 2, fy - h, fy)
    fx = torch.where(fx > w / 2, fx - w, fx)
    return torch.stack([fy, fx], dim=-1)


def align_spectra(
    spectra: torch.Tensor,
    shape: tuple[int, int],
    *,
    max_shift_px: float | None = None,
    iterations: int = 10,
    tolerance_px: float = 0.02,
) -> torch.Tensor:
    """Shifts (..., n, 2) in pixels of ``shape`` from weighted rfft2 spectra (..., n, h, w//2+1).

    Each frame against the sum of the other aligned frames, iterated (see the module docstring).
    """
    shifts = torch.zeros(*spectra.shape[:-2], 2, device=spectra.device)
    aligned = spectra
    for _ in range(iterations):
        reference = aligned.sum(dim=-3, keepdim=True) - aligned
        cc = torch.fft.irfft2(spectra * reference.conj(), s=shape)
        new = _peaks(cc, max_shift_px)
        change = float((new - shifts).abs().max()) if new.numel() else 0.0
        shifts = new
        if change < tolerance_px:
            break
        ey, ex = _ramps(shape[0], shape[1], shifts, shape)
        aligned = spectra * ey[..., :, None] * ex[..., None, :]
    return shifts


def _defect_spectra(
    values: torch.Tensor, yx: torch.Tensor, shape: tuple[int, int], crop: tuple[int, int]
) -> torch.Tensor:
    """rfft2 on the ``crop`` grid of images (..., P values) that are zero except at P pixels ``yx`` (P, 2)."""
    h, w = crop
    ky = torch.fft.fftfreq(h, d=shape[0] / h, device=values.device)
    kx = torch.fft.rfftfreq(w, d=shape[1] / w, device=values.device)
    py, px = (-2 * torch.pi * yx[:, i, None].to(torch.float32) * k for i, k in ((0, ky), (1, kx)))
    ey, ex = torch.polar(torch.ones_like(py), py), torch.polar(torch.ones_like(px), px)  # (P, h), (P, w//2+1)
    return (values.to(torch.complex64)[..., :, None] * ey).transpose(-1, -2) @ ex


def alignment_spectra(
    spectra: torch.Tensor,
    shape: tuple[int, int],
    pixel_size_A: float,
    bfactor_A2: float,
    crop: tuple[int, int],
    *,
    frames: torch.Tensor | None = None,
    defects: torch.Tensor | None = None,
) -> torch.Tensor:
    """B-weighted copy of rfft2 spectra (..., n, y, x//2+1) of frames of ``shape`` on the ``crop`` grid.

    Mean removed. ``defects``: (y, x) bool mask of pixels of ``frames`` (..., n, y, x) to ignore: the
    spectra become those of frames holding the frame's mean there (an exact correction on the crop grid,
    one small matrix product; for more than ``MAX_DEFECTS`` pixels the masked frames are transformed).
    """
    cropped = _crop_spectrum(spectra, shape, crop).clone()
    if defects is not None and frames is not None and bool(defects.any()):
        yx = defects.nonzero()
        if len(yx) <= MAX_DEFECTS:
            values = frames[..., yx[:, 0], yx[:, 1]]  # (..., n, P)
            delta = frames.mean(dim=(-2, -1))[..., None] - values
            cropped += _defect_spectra(delta, yx, shape, crop)
        else:
            masked = torch.where(defects, frames.mean(dim=(-2, -1), keepdim=True), frames)
            cropped = _crop_spectrum(torch.fft.rfft2(masked), shape, crop)
    cropped[..., 0, 0] = 0
    k = spatial_frequency_2d(crop, pixel_size_A * shape[-1] / crop[-1], True, spectra.device)
    return cropped.mul_(torch.exp(-bfactor_A2 * k * k / 4))


def hot_pixel_mask(total: torch.Tensor | np.ndarray, *, threshold_sd: float = 6.0) -> torch.Tensor:
    """Hot pixels and X-ray hits (y, x) bool of a frame sum: brighter than the mean of their 8 neighbours.

    By more than ``threshold_sd`` robust standard deviations of that residual (1.4826 · MAD over a
    sample of the image, at least the Poisson σ of the sum). Box filters only: a few ms for 4k².
    """
    t = as_tensor(total)
    padded = F.pad(t[None, None], (1, 1, 1, 1), mode="reflect")[0, 0]
    rows = padded[:-2] + padded[1:-1] + padded[2:]
    box = rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]  # 3×3 sums (separable: faster than avg_pool2d)
    residual = t - (box - t) / 8
    sample = residual.flatten()[:: max(1, residual.numel() // 65536)]
    centre = sample.median()
    sigma = torch.maximum(1.4826 * (sample - centre).abs().median(), t.mean().clamp(min=1e-6).sqrt())
    return (residual - centre) > threshold_sd * sigma


def without_hot_pixels(frames: torch.Tensor | np.ndarray, *, threshold_sd: float = 6.0) -> torch.Tensor:
    """A copy of frames (n, y, x) whose hot pixels (``hot_pixel_mask`` of their sum) hold each frame's mean.

    Such pixels are fixed on the detector, so they do not move with the specimen and pull the
    alignment towards zero shift. For estimating shifts only, not for the sums.
    """
    frames = as_tensor(frames)
    mask = hot_pixel_mask(frames.sum(0), threshold_sd=threshold_sd)
    return torch.where(mask, frames.mean(dim=(-2, -1), keepdim=True), frames)


def estimate_global_shifts(
    frames: torch.Tensor | np.ndarray,
    pixel_size_A: float,
    *,
    bfactor_A2: float = GLOBAL_BFACTOR_A2,
    max_shift_A: float | None = None,
    iterations: int = 10,
    tolerance_px: float = 0.02,
    reference_frame: int = 0,
    binning: float | None = None,
    defects: torch.Tensor | None = None,
    spectra: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-frame shifts of a movie, each frame against the sum of the others (see the module docstring).

    Parameters
    ----------
    frames : torch.Tensor or numpy.ndarray, (..., n, y, x)
        The frames (counts or e⁻ per pixel); a tensor stays on its device.
    pixel_size_A : float
        Pixel size (Å).
    bfactor_A2 : float
        B-factor of the spectra's weighting exp(−B·k²/4) (Å²).
    max_shift_A : float or None
        Largest shift searched (Å); None: any.
    iterations, tolerance_px : int, float
        At most ``iterations`` rounds; stop when no shift changes by more than ``tolerance_px`` (pixels).
    reference_frame : int
        The frame whose shift is 0.
    binning : float or None
        Bin the alignment grid by this (None: from ``bfactor_A2``, see ``alignment_crop``).
    defects : torch.Tensor or None, (y, x) bool
        Pixels to ignore (e.g. ``hot_pixel_mask`` of the frame sum).
    spectra : torch.Tensor or None, (..., n, y, x // 2 + 1) complex
        The frames' rfft2 if already computed (reused, not modified).

    Returns
    -------
    torch.Tensor, float32, (..., n, 2)
        Shifts (y, x) in input pixels: frame i's content is displaced by ``s[i]``; ``s[reference_frame] = 0``.
    """
    frames = as_tensor(frames)
    shape = (frames.shape[-2], frames.shape[-1])
    crop = alignment_crop(shape, pixel_size_A, bfactor_A2, binning=binning)
    spectra = torch.fft.rfft2(frames) if spectra is None else spectra
    weighted = alignment_spectra(spectra, shape, pixel_size_A, bfactor_A2, crop, frames=frames, defects=defects)
    scale = torch.tensor([shape[0] / crop[0], shape[1] / crop[1]], device=frames.device)
    max_shift = None if max_shift_A is None else max_shift_A / pixel_size_A / float(scale.max())
    shifts = align_spectra(weighted, crop, max_shift_px=max_shift, iterations=iterations, tolerance_px=tolerance_px)
    shifts = shifts * scale
    return shifts - shifts[..., reference_frame : reference_frame + 1, :]


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


def fit_local_motion(
    centres: torch.Tensor, shifts: torch.Tensor, shape: tuple[int, int], *, reference_frame: int = 0
) -> LocalMotion:
    """Least-squares fit of the polynomial model to patch shifts (P, n, 2) at ``centres`` (P, 2)."""
    p, n, _ = shifts.shape
    frame = torch.arange(n, device=shifts.device).expand(p, n)
    y = centres[:, 0, None].expand(p, n)
    x = centres[:, 1, None].expand(p, n)
    model = LocalMotion(shape, n, reference_frame, torch.zeros(18, 2), centres, shifts)
    terms = _poly_terms(*model._normalised(y, x, frame)).reshape(p * n, -1).to(torch.float64)
    target = (shifts - shifts[:, reference_frame : reference_frame + 1]).reshape(p * n, 2).to(torch.float64)
    coefficients = torch.linalg.lstsq(terms, target).solution.to(torch.float32)
    model.coefficients = coefficients
    model.rms_fit_px = float(((terms.float() @ coefficients - target.float()) ** 2).sum(-1).mean().sqrt())
    return model


def patch_grid(
    shape: tuple[int, int], patches: tuple[int, int], *, overlap: float = 0.5
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


def estimate_local_motion(
    aligned_frames: torch.Tensor,
    pixel_size_A: float,
    *,
    patches: tuple[int, int] = (5, 5),
    bfactor_A2: float = PATCH_BFACTOR_A2,
    max_shift_A: float | None = None,
    reference_frame: int = 0,
    binning: float | None = None,
) -> LocalMotion:
    """Residual local motion of globally aligned frames, fitted over a grid of patches.

    Parameters
    ----------
    aligned_frames : torch.Tensor, (n, y, x)
        Globally aligned frames (counts or e⁻ per pixel).
    pixel_size_A : float
        Pixel size (Å).
    patches : (int, int)
        Patches along y and x (overlapping by half).
    bfactor_A2, max_shift_A, reference_frame, binning
        As for :func:`estimate_global_shifts`, applied to every patch (Å², Å, frame index, factor).

    Returns
    -------
    LocalMotion
        The polynomial field d(y, x, t) in pixels, with the patch centres and measured shifts.
    """
    shape = (aligned_frames.shape[-2], aligned_frames.shape[-1])
    corners, (h, w) = patch_grid(shape, patches)
    rows = corners[:, 0, None] + torch.arange(h)  # (P, h)
    cols = corners[:, 1, None] + torch.arange(w)  # (P, w)
    cut = aligned_frames[:, rows[:, :, None], cols[:, None, :]].transpose(0, 1)  # (P, n, h, w)
    shifts = estimate_global_shifts(
        cut,
        pixel_size_A,
        bfactor_A2=bfactor_A2,
        max_shift_A=max_shift_A,
        reference_frame=reference_frame,
        binning=binning,
    )
    centres = corners.to(torch.float32) + torch.tensor([h / 2, w / 2])
    return fit_local_motion(centres, shifts, shape, reference_frame=reference_frame)


def apply_local_motion(frames: torch.Tensor, model: LocalMotion, *, chunk: int = 4) -> torch.Tensor:
    """Frames (n, y, x) resampled in place along the local field: frame_i(p) ← frame_i(p + d_i(p))."""
    ny, nx = frames.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(ny, dtype=torch.float32), torch.arange(nx, dtype=torch.float32), indexing="ij")
    for start in range(0, frames.shape[0], chunk):
        index = torch.arange(start, min(start + chunk, frames.shape[0]))
        d = model.displacement(yy, xx, index[:, None, None].expand(-1, ny, nx))  # (c, y, x, 2)
        gy = 2 * (yy + d[..., 0]) / (ny - 1) - 1
        gx = 2 * (xx + d[..., 1]) / (nx - 1) - 1
        grid = torch.stack([gx, gy], dim=-1)
        frames[index] = F.grid_sample(
            frames[index, None], grid, mode="bicubic", padding_mode="reflection", align_corners=True
        )[:, 0]
    return frames


# --- sums -------------------------------------------------------------------------------------------
def shift_frames_(
    frames: torch.Tensor, shifts_px: torch.Tensor, *, spectra: torch.Tensor | None = None
) -> torch.Tensor:
    """Translate each frame (n, y, x) by −shift (in place, Fourier, sub-pixel exact, periodic).

    ``spectra``: the frames' rfft2 if already computed (not modified).
    """
    ny, nx = frames.shape[-2:]
    ey, ex = _ramps(ny, nx, shifts_px.to(frames.device), (ny, nx))
    spectra = torch.fft.rfft2(frames) if spectra is None else spectra.clone()
    spectra = spectra.mul_(ey[:, :, None]).mul_(ex[:, None, :])
    frames[:] = torch.fft.irfft2(spectra, s=(ny, nx))
    return frames


def dose_weights(
    n_frames: int,
    frame_dose_e_A2: float,
    pre_exposure_e_A2: float,
    shape: tuple[int, int],
    pixel_size_A: float,
    *,
    voltage_kV: float = 300.0,
) -> torch.Tensor:
    """Per-frame rfft2 weights (n, y, x//2+1): q_i(k) · √n / √(Σ_j q_j(k)²) (read-only: cached).

    q_i = Grant & Grigorieff attenuation at the exposure after frame i (pre + (i+1) · frame dose).
    The weights keep the noise power of a plain sum at every k and the sum's mean (q = 1 at k = 0).
    The pre-exposure is a common factor of all q_i and cancels: the weights of every movie of a tilt
    series with the same frame dose are the same (computed once).
    """
    return _dose_weights(int(n_frames), float(frame_dose_e_A2), tuple(shape), float(pixel_size_A), float(voltage_kV))


@functools.lru_cache(maxsize=4)
def _dose_weights(
    n: int, frame_dose: float, shape: tuple[int, int], pixel_size_A: float, voltage_kV: float
) -> torch.Tensor:
    k = spatial_frequency_2d(shape, pixel_size_A, True).to(torch.float64)
    half_inverse = (-0.5 / critical_exposure(k, voltage_kV=voltage_kV)).to(torch.float32)
    q = torch.exp(frame_dose * torch.arange(1, n + 1, dtype=torch.float32)[:, None, None] * half_inverse)
    return q.mul_(math.sqrt(n) / q.pow(2).sum(0).sqrt_())


@dataclass
class FrameSums:
    """Sum of the selected frames, and of their odd (1st, 3rd…) and even (2nd, 4th…) frames."""

    total: torch.Tensor
    odd: torch.Tensor
    even: torch.Tensor


def aligned_sums(
    frames: torch.Tensor,
    shifts_px: torch.Tensor | None = None,
    *,
    first: int = 0,
    last: int | None = None,
    weights: torch.Tensor | None = None,
    out_shape: tuple[int, int] | None = None,
    spectra: torch.Tensor | None = None,
) -> FrameSums:
    """Sums of frames ``first``..``last`` (0-based, inclusive) of (n, y, x), each translated by −shift.

    One rfft per frame (``spectra``: the frames' rfft2 if already computed; not modified): the shifts
    are phase ramps, ``weights`` (n, h, w//2+1) (e.g. ``dose_weights`` on the output grid) multiply the
    spectra, and ``out_shape`` (h, w) ≤ (y, x) bins by Fourier cropping (the mean is kept).
    Odd = 1st, 3rd… frame of the range; total = odd + even.
    """
    ny, nx = frames.shape[-2:]
    last = frames.shape[0] - 1 if last is None else last
    h, w = out_shape or (ny, nx)
    full = torch.fft.rfft2(frames[first : last + 1]) if spectra is None else spectra[first : last + 1]
    selected = _crop_spectrum(full, (ny, nx), (h, w))
    if shifts_px is not None:
        ey, ex = _ramps(h, w, as_tensor(shifts_px[first : last + 1], device=frames.device), (ny, nx))
    halves = torch.zeros(2, h, w // 2 + 1, dtype=torch.complex64, device=frames.device)
    weights = None if weights is None else weights.to(frames.device)
    for i in range(selected.shape[0]):  # frame by frame: the temporaries stay in cache (3× faster than batched)
        if shifts_px is None and weights is None:
            halves[i % 2] += selected[i]
            continue
        factor = ey[i, :, None] * ex[i, None, :] if shifts_px is not None else torch.ones_like(selected[i])
        if weights is not None:
            torch.view_as_real(factor).mul_(weights[first + i, :, :, None])
        halves[i % 2].addcmul_(selected[i], factor)
    odd, even = torch.fft.irfft2(halves, s=(h, w)).mul_(h * w / (ny * nx))
    return FrameSums(odd + even, odd, even)


def sum_frames(
    aligned: torch.Tensor, *, first: int = 0, last: int | None = None, weights: torch.Tensor | None = None
) -> FrameSums:
    """Sums of aligned frames ``first``..``last`` (0-based, inclusive); ``weights`` (n, y, x//2+1) optional."""
    last = aligned.shape[0] - 1 if last is None else last
    if weights is None:
        odd = aligned[first : last + 1 : 2].sum(0)
        even = aligned[first + 1 : last + 1 : 2].sum(0)
        return FrameSums(odd + even, odd, even)
    return aligned_sums(aligned, None, first=first, last=last, weights=weights)
