"""CTF correction of tilt images: phase flipping or a Wiener filter, in strips parallel to the tilt axis.

Geometry (tomoforge.methods.align.projection_model; the simulator's truth): a point X = (x, y, 0) of the
specimen mid-plane lands at image position p = (R X)_xy + s (Å from the image centre, pixel n // 2),
R = Rz(ZRot) · Ry(YTilt) · Rx(XTilt), at height h = (R X)_z towards the source, where its defocus is
ΔF + h (positive = underfocus; the simulator's ``defocus = DefocusU/V + h``; RELION 5's DefocusU/V are
the defocus at the tomogram centre, h = 0). h is linear in the image position:

    h(p) = g · (p − s),   g = A⁻ᵀ b,  A = R[:2, :2],  b = R[2, :2]

g is perpendicular to the tilt axis and |g| = tan(YTilt) when XTilt = 0: a strip at distance d from the
axis in the image (x = d / cos(tilt) in the specimen) is d·tan(tilt) = x·sin(tilt) off the mean defocus,
as in IMOD ctfphaseflip. ``handedness`` −1 flips the gradient (data of the other hand; IMOD's -invert).

Each view is corrected at a set of defocus offsets (strips), the whole (padded) image at each, and every
pixel takes the correction made at its strip's defocus: strips are at most 2 × ``defocus_tolerance_A``
wide in defocus (no pixel is corrected more than the tolerance away from its own defocus; by default the
error that turns the CTF phase by π/8 at Nyquist, 228 Å at 3 Å/px, 300 kV) and, when
``strip_width_px`` is given, at most that many pixels wide. Astigmatism (U, V, angle) is kept in every
strip; the strip's offset is added to both U and V.

Sign: the corrected spectrum is F · (−sign CTF) (phase flip) or F · (−CTF) / (CTF² + 1/SNR(k)) (Wiener),
so the first lobe (CTF < 0 for underfocus, tomoforge.methods.ctf.transfer) keeps the contrast of the raw image:
protein stays dark, and the corrected image correlates positively, at every frequency, with the image
the specimen would give with a perfect transfer CTF = −1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
from numpy.typing import ArrayLike

from tomoforge.methods.align.projection_model import rotation_matrices
from tomoforge.methods.ctf.settings import CorrectionSettings, Method, Optics
from tomoforge.methods.ctf.transfer import electron_wavelength_A
from tomoforge.methods.fourier import as_tensor, fast_fft_size, frequency_grid_2d


def defocus_gradient(tilt_deg: ArrayLike, z_rot_deg: ArrayLike, x_tilt_deg: ArrayLike = 0.0) -> np.ndarray:
    """(n, 2) gradient (gx, gy) of the specimen height h = g · (p − s) over the image (Å per Å)."""
    r = rotation_matrices(tilt_deg, z_rot_deg, x_tilt_deg)
    a, b = r[:, :2, :2], r[:, 2, :2]
    return np.linalg.solve(np.transpose(a, (0, 2, 1)), b[:, :, None])[:, :, 0]


def auto_tolerance_A(pixel_size_A: float, voltage_kV: float) -> float:
    """The defocus error (Å) that turns the CTF phase by π/8 at Nyquist: 1 / (8 λ k²), k = 1 / (2 · pixel)
    (228 Å at 3 Å/px and 300 kV; a strip is twice as wide)."""
    k = 0.5 / pixel_size_A
    return 1.0 / (8.0 * electron_wavelength_A(voltage_kV) * k * k)


def delocalisation_px(defocus_A: float, pixel_size_A: float, voltage_kV: float, cs_mm: float) -> float:
    """How far (px) the CTF spreads a point at Nyquist: λ|ΔF|k + Cs λ³ k³ (Å) / pixel size."""
    lam, k = electron_wavelength_A(voltage_kV), 0.5 / pixel_size_A
    return (lam * abs(defocus_A) * k + cs_mm * 1e7 * lam**3 * k**3) / pixel_size_A


@lru_cache(maxsize=4)
def _grid(shape: tuple[int, int], pixel_size_A: float, device: str) -> tuple[torch.Tensor, ...]:
    """(k², cos 2θ, sin 2θ) on the rfft grid of ``shape`` (float32, k in 1/Å, θ the angle of k from X)."""
    ky, kx = frequency_grid_2d(shape, pixel_size_A, True, device)
    theta2 = 2 * torch.atan2(ky, kx)
    return ky * ky + kx * kx, torch.cos(theta2), torch.sin(theta2)


class _ViewPhase:
    """χ(k) + asin(A) of one view on an rfft grid, split as base + slope · δ for a defocus offset δ (Å):
    then CTF = −sin(χ + asin A) (the PRIMER's −[√(1 − A²) sin χ + A cos χ]), one FMA and one sine per
    strip. float32 throughout: |χ| < ~150 rad at the corner of the grid, so its error is < 2e-5 rad."""

    def __init__(
        self,
        shape: tuple[int, int],
        pixel_size_A: float,
        defocus_u_A: float,
        defocus_v_A: float,
        astigmatism_angle_deg: float,
        optics: Optics,
        phase_shift_deg: float,
        device: torch.device | str | None,
    ):
        k2, cos2t, sin2t = _grid(tuple(shape), float(pixel_size_A), str(torch.device(device or "cpu")))
        a = math.radians(2 * astigmatism_angle_deg)
        half = 0.5 * (defocus_u_A - defocus_v_A)
        dfz = (cos2t * (half * math.cos(a)) + sin2t * (half * math.sin(a))).add_(0.5 * (defocus_u_A + defocus_v_A))
        lam = electron_wavelength_A(optics.voltage_kV)
        self.slope = k2 * (math.pi * lam)
        self.base = (
            self.slope * dfz
            - (0.5 * math.pi * optics.cs_mm * 1e7 * lam**3) * k2 * k2
            + (math.radians(phase_shift_deg) + math.asin(optics.amplitude_contrast))
        )
        self.k2 = k2

    def filters(
        self, offsets_A: torch.Tensor, method: str, wiener_snr: float, wiener_b_factor_A2: float
    ) -> torch.Tensor:
        """(m, y, x // 2 + 1) correction filters at m defocus offsets (Å)."""
        delta = offsets_A.to(torch.float32, copy=False).reshape(-1, 1, 1).to(self.base.device)
        s = torch.sin(torch.addcmul(self.base, self.slope, delta))  # = −CTF
        if method == "phase-flip":
            return torch.sign(s)
        if method != "wiener":
            raise ValueError(f"method {method!r}: expected 'phase-flip' or 'wiener'")
        if wiener_snr <= 0:
            raise ValueError(f"wiener_snr ({wiener_snr}) must be > 0")
        inverse_snr = torch.exp(wiener_b_factor_A2 * self.k2 / 2) / wiener_snr
        return s / (s * s + inverse_snr)


def correction_filters(
    shape: tuple[int, int],
    pixel_size_A: float,
    defocus_u_A: ArrayLike,
    defocus_v_A: ArrayLike,
    astigmatism_angle_deg: float,
    *,
    optics: Optics = Optics(),
    phase_shift_deg: float = 0.0,
    method: Method = "phase-flip",
    wiener_snr: float = 1.0,
    wiener_b_factor_A2: float = 0.0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(m, y, x // 2 + 1) rfft-grid filters for m defocus pairs (U ≥ V, Å, the same astigmatism U − V):
    −sign(CTF) or the Wiener filter −CTF / (CTF² + 1/SNR(k)), SNR(k) = wiener_snr · exp(−B k² / 2)."""
    u = as_tensor(defocus_u_A, torch.float64).reshape(-1)
    v = as_tensor(defocus_v_A, torch.float64).reshape(-1)
    if not torch.allclose(u - v, (u - v)[:1].expand_as(u)):
        raise ValueError("correction_filters: every defocus pair must have the same astigmatism U − V")
    phase = _ViewPhase(
        shape, pixel_size_A, float(u[0]), float(v[0]), astigmatism_angle_deg, optics, phase_shift_deg, device
    )
    return phase.filters(u - u[0], method, wiener_snr, wiener_b_factor_A2)


def _padded_size(n: int, pad: int) -> int:
    """n + 2·pad rounded up to a size with only factors 2, 3 and 5 (fast FFTs)."""
    return fast_fft_size(n + 2 * pad)


def strip_offsets(
    offset_map_A: torch.Tensor, tolerance_A: float, gradient_A_per_px: float, strip_width_px: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(strip centres (Å of defocus), strip index per pixel) for a map of defocus offsets (Å)."""
    lo, hi = float(offset_map_A.min()), float(offset_map_A.max())
    spacing = 2.0 * tolerance_A
    if strip_width_px > 0 and gradient_A_per_px > 0:
        spacing = min(spacing, strip_width_px * gradient_A_per_px)
    if hi <= lo:
        return (
            torch.tensor([lo], dtype=torch.float64, device=offset_map_A.device),
            torch.zeros_like(offset_map_A, dtype=torch.long),
        )
    n = max(1, math.ceil((hi - lo) / spacing - 1e-9))
    width = (hi - lo) / n
    centres = lo + (torch.arange(n, dtype=torch.float64, device=offset_map_A.device) + 0.5) * width
    index = torch.clamp(((offset_map_A - lo) / width).floor().long(), 0, n - 1)
    return centres, index


def correct_ctf_image(
    image: torch.Tensor,
    pixel_size_A: float,
    defocus_u_A: float,
    defocus_v_A: float,
    astigmatism_angle_deg: float = 0.0,
    tilt_deg: float = 0.0,
    z_rot_deg: float = 0.0,
    x_tilt_deg: float = 0.0,
    shift_A: tuple[float, float] = (0.0, 0.0),
    *,
    optics: Optics = Optics(),
    phase_shift_deg: float = 0.0,
    settings: CorrectionSettings = CorrectionSettings(),
) -> tuple[torch.Tensor, int]:
    """CTF-correct one tilt view in strips of constant defocus (see the module docstring).

    Parameters
    ----------
    image : torch.Tensor
        The view (y, x); its device is where the work is done.
    pixel_size_A : float
        Pixel size, Å.
    defocus_u_A, defocus_v_A : float
        Defocus at the tomogram centre (height 0), Å (U ≥ V, positive = underfocus).
    astigmatism_angle_deg : float
        Angle of the U axis from the image X axis, degrees.
    tilt_deg, z_rot_deg, x_tilt_deg : float
        The view's projection model (YTilt, ZRot, XTilt), degrees.
    shift_A : tuple of float
        Where the tomogram centre lands in the image (x, y), Å from the image centre (pixel n // 2).
    optics : Optics
        Voltage, Cs, amplitude contrast.
    phase_shift_deg : float
        Phase plate shift, degrees.
    settings : CorrectionSettings
        Method, strips, Wiener filter, padding, handedness.

    Returns
    -------
    corrected : torch.Tensor
        The corrected view (y, x), float32.
    strips : int
        The number of strips (defoci) it was corrected at.
    """
    img = as_tensor(image, torch.float32)
    device = img.device
    ny, nx = img.shape
    g = settings.handedness * defocus_gradient(tilt_deg, z_rot_deg, x_tilt_deg)[0]
    yy = (torch.arange(ny, device=device, dtype=torch.float32) - ny // 2) * pixel_size_A - shift_A[1]
    xx = (torch.arange(nx, device=device, dtype=torch.float32) - nx // 2) * pixel_size_A - shift_A[0]
    offsets = float(g[0]) * xx[None, :] + float(g[1]) * yy[:, None]
    tolerance = settings.defocus_tolerance_A or auto_tolerance_A(pixel_size_A, optics.voltage_kV)
    centres, index = strip_offsets(offsets, tolerance, float(np.hypot(*g)) * pixel_size_A, settings.strip_width_px)
    pad = settings.pad_px
    if pad is None:
        extreme = max(defocus_u_A + abs(float(centres[0])), defocus_u_A + abs(float(centres[-1])))
        pad = math.ceil(delocalisation_px(extreme, pixel_size_A, optics.voltage_kV, optics.cs_mm))
    shape = (_padded_size(ny, pad), _padded_size(nx, pad)) if pad > 0 else (ny, nx)
    y0, x0 = (shape[0] - ny) // 2, (shape[1] - nx) // 2
    work = torch.full(shape, float(img.mean()), dtype=torch.float32, device=device)
    work[y0 : y0 + ny, x0 : x0 + nx] = img
    spectrum = torch.fft.rfft2(work)
    phase = _ViewPhase(
        shape, pixel_size_A, defocus_u_A, defocus_v_A, astigmatism_angle_deg, optics, phase_shift_deg, device
    )
    out = torch.empty_like(img)
    for start in range(0, len(centres), max(1, settings.chunk)):
        part = centres[start : start + settings.chunk]
        filters = phase.filters(part, settings.method, settings.wiener_snr, settings.wiener_b_factor_A2)
        corrected = torch.fft.irfft2(spectrum * filters, s=shape)[:, y0 : y0 + ny, x0 : x0 + nx]
        local = index - start
        inside = (local >= 0) & (local < len(part))
        picked = torch.gather(corrected, 0, local.clamp(0, len(part) - 1)[None])[0]
        out = torch.where(inside, picked, out)
    return out, len(centres)


def correct_ctf_stack(
    images: torch.Tensor | np.ndarray,
    pixel_size_A: float,
    defocus_u_A: ArrayLike,
    defocus_v_A: ArrayLike,
    astigmatism_angle_deg: ArrayLike,
    tilt_deg: ArrayLike,
    z_rot_deg: ArrayLike,
    x_tilt_deg: ArrayLike | None = None,
    shifts_A: ArrayLike | None = None,
    *,
    optics: Optics = Optics(),
    phase_shift_deg: ArrayLike | None = None,
    settings: CorrectionSettings = CorrectionSettings(),
    skip: Sequence[bool] | None = None,
) -> tuple[torch.Tensor, list[int]]:
    """CTF-correct every view of a stack with its own CTF and geometry (``correct_ctf_image``).

    Parameters
    ----------
    images : torch.Tensor or numpy.ndarray
        The stack (n, y, x).
    pixel_size_A : float
        Pixel size, Å.
    defocus_u_A, defocus_v_A, astigmatism_angle_deg : float or sequence of float
        Per view (or one for all): defocus U ≥ V at the tomogram centre (Å) and the angle of U (degrees).
    tilt_deg, z_rot_deg, x_tilt_deg : float or sequence of float
        Per view: the projection model (YTilt, ZRot, XTilt), degrees; ``x_tilt_deg`` default 0.
    shifts_A : array-like, optional
        Per view (n, 2): where the tomogram centre lands (x, y), Å; default the image centre.
    optics : Optics
        Voltage, Cs, amplitude contrast.
    phase_shift_deg : float or sequence of float, optional
        Per view phase plate shift, degrees (default 0).
    settings : CorrectionSettings
        Method, strips, Wiener filter, padding, handedness.
    skip : sequence of bool, optional
        Views that come back untouched (0 strips).

    Returns
    -------
    corrected : torch.Tensor
        The corrected stack (n, y, x), float32.
    strips : list of int
        Strips used per view.
    """
    stack = as_tensor(images, torch.float32)
    n = stack.shape[0]
    per_view = {
        name: list(np.broadcast_to(np.asarray(v if v is not None else d, dtype=float), (n,)))
        for name, v, d in (
            ("u", defocus_u_A, 0.0),
            ("v", defocus_v_A, 0.0),
            ("angle", astigmatism_angle_deg, 0.0),
            ("tilt", tilt_deg, 0.0),
            ("zrot", z_rot_deg, 0.0),
            ("xtilt", x_tilt_deg, 0.0),
            ("phase", phase_shift_deg, 0.0),
        )
    }
    shifts = np.zeros((n, 2)) if shifts_A is None else np.broadcast_to(np.asarray(shifts_A, float), (n, 2))
    skip = [False] * n if skip is None else list(skip)
    out, strips = stack.clone(), []
    for i in range(n):
        if skip[i]:
            strips.append(0)
            continue
        out[i], count = correct_ctf_image(
            stack[i],
            pixel_size_A,
            per_view["u"][i],
            per_view["v"][i],
            per_view["angle"][i],
            per_view["tilt"][i],
            per_view["zrot"][i],
            per_view["xtilt"][i],
            (float(shifts[i, 0]), float(shifts[i, 1])),
            optics=optics,
            phase_shift_deg=per_view["phase"][i],
            settings=settings,
        )
        strips.append(count)
    return out, strips


def fourier_ring_correlation(
    a: torch.Tensor, b: torch.Tensor, pixel_size_A: float = 1.0, n_shells: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(shell centre frequencies (1/Å), FRC per shell) of two images (y, x), shells up to Nyquist."""
    a, b = as_tensor(a, torch.float64), as_tensor(b, torch.float64, a.device)
    fa, fb = torch.fft.rfft2(a), torch.fft.rfft2(b)
    ky, kx = frequency_grid_2d((a.shape[-2], a.shape[-1]), 1.0, True, a.device)
    k = torch.sqrt(ky * ky + kx * kx)
    n = n_shells or min(a.shape[-2:]) // 2
    shell = (k * 2 * n).long().clamp(max=n).reshape(-1)
    weight = torch.ones_like(k)
    weight[:, 1 : (a.shape[-1] - 1) // 2 + 1] = 2.0  # rfft: columns that stand for two Fourier components
    w = weight.reshape(-1)

    def ring(values: torch.Tensor) -> torch.Tensor:
        return torch.zeros(n + 1, dtype=torch.float64, device=a.device).index_add_(0, shell, values.reshape(-1) * w)

    num = ring((fa * fb.conj()).real)
    den = torch.sqrt(ring(fa.abs() ** 2) * ring(fb.abs() ** 2)).clamp_min(1e-30)
    centres = (torch.arange(n, dtype=torch.float64) + 0.5) / (2 * n) / pixel_size_A
    return centres, (num / den)[:n]


__all__ = [
    "Optics",
    "CorrectionSettings",
    "defocus_gradient",
    "auto_tolerance_A",
    "delocalisation_px",
    "correction_filters",
    "strip_offsets",
    "correct_ctf_image",
    "correct_ctf_stack",
    "fourier_ring_correlation",
]
