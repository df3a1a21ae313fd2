"""Particle extraction: 3D boxes from tomograms with their 3D weights, and 2D views from aligned tilt series.

Geometry (docs/conventions.md): a particle's centre X = position + shift (x, y, z in Å from its tomogram's
centre). In a tomogram of voxel size p and shape (Z, Y, X) it sits at voxel index X / p + N // 2 on each axis;
in view i of a tilt series it lands at u_i = [R_i X]_(x, y) + s_i (Å from the image centre, pixel N // 2),
R_i = Rz(ZRot_i) · Ry(YTilt_i) · Rx(XTilt_i), at height h_i = [R_i X]_z (towards the source), where its
defocus is ΔF_i + h_i (positive = underfocus; as the simulator forms images and ``methods/ctf/correct.py``
corrects them).

Boxes are cut at whole pixels and centred in Fourier space: a box of ``n_src`` pixels of size p around the
particle and the output box of ``n_out`` pixels of size p · n_src / n_out span the same length L, so the
output's integer frequencies are a subset of the source's (binning = Fourier cropping); the phase ramp
exp(2πi k · (a_src − a_out)) (k in cycles per box, a the particle's fractional position in each box) puts
the particle exactly at the output's centre voxel ``n_out // 2`` (sub-pixel). The Nyquist plane of an even
output box is dropped (its phase is ambiguous after a sub-pixel shift). Coordinates are in Å, so the same
particle extracted at bin 1 and bin 2 gives the same box after rescaling.

3D weights (``subtomogram_weights``) are the transfer of each view summed in Fourier space: the central slice
perpendicular to the view's beam direction d_i = R_i[2] (one Fourier voxel thick: max(0, 1 − |k · d_i| L)),
times |CTF_i| at the frequency (R_i k)_(x, y) of the view and the particle's defocus there, times the exposure
attenuation q(|k|) = exp(−N_i / 2 N_e(|k|)) (Grant & Grigorieff 2015): the missing wedge, CTF and dose of the
included views. They are on the ``rfftn`` grid (box, box, box // 2 + 1), DC at index 0, tomogram frame.

Pseudo-subtomogram views (``extract_particle_views``, RELION 4/5 style): each included view cropped at the
particle's projected centre (sub-pixel), multiplied by its CTF at the particle's defocus (premultiplied:
the first lobe turns dark protein bright), attenuated by its dose, then cropped in real space to
``cropped_box`` (the larger ``box`` keeps the CTF's delocalised signal while multiplying).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike

from tomoforge.methods.ctf.settings import Optics
from tomoforge.methods.ctf.transfer import ctf_from_phase, ctf_phase, electron_wavelength_A
from tomoforge.methods.preprocess.dose import critical_exposure


def source_box(box: int, pixel_size_A: float, output_pixel_size_A: float) -> tuple[int, float]:
    """The box to cut (pixels of ``pixel_size_A``) for an output ``box`` at ``output_pixel_size_A``, and the
    exact output pixel size (Å) that results: n_src = round(box · out / in), out = in · n_src / box."""
    if box < 2:
        raise ValueError(f"box must be at least 2 pixels, got {box}")
    n_src = max(2, int(round(box * output_pixel_size_A / pixel_size_A)))
    return n_src, pixel_size_A * n_src / box


def _integer_frequencies(n: int, device: torch.device) -> torch.Tensor:
    return torch.round(torch.fft.fftfreq(n, device=device) * n).to(torch.int64)


def recentre_spectrum(spectrum: torch.Tensor, offset_px: torch.Tensor, n_out: int) -> torch.Tensor:
    """Spectra (…, n_src^d) of boxes (``fftn`` layout) → spectra (…, n_out^d) of the same length L whose centre
    voxel ``n_out // 2`` is the point ``n_src // 2 + offset_px`` (…, d; axes in array order) of the source.

    Values keep their scale (the output is the same function sampled more coarsely or finely)."""
    d = offset_px.shape[-1]
    n_src = spectrum.shape[-1]
    device = spectrum.device
    k_out = _integer_frequencies(n_out, device)
    keep = k_out.abs() < min(n_src, n_out) / 2.0  # an even box's Nyquist plane is dropped
    index = torch.remainder(k_out, n_src)
    out = spectrum
    if n_src != n_out:  # the same box: the frequencies are already in place
        for axis in range(d):
            out = out.index_select(out.ndim - d + axis, index)
    a_src = (n_src // 2 + offset_px.to(torch.float64)) / n_src  # (…, d) fractional position in the box
    delta = a_src - (n_out // 2) / n_out
    k = k_out.to(torch.float64)
    lead = delta.shape[:-1]
    scale = (n_out / n_src) ** d
    for axis in range(d):  # the ramp is separable: one complex factor per axis, broadcast
        factor = torch.polar(keep.to(torch.float64) * scale ** (1.0 / d), (2 * math.pi) * k * delta[..., axis, None])
        shape = [1] * d
        shape[axis] = n_out
        out = out * factor.to(out.dtype).reshape(*lead, *shape)
    return out


def _ramp_half(spec: torch.Tensor, offset_px: torch.Tensor, n: int) -> torch.Tensor:
    """``recentre_spectrum`` for boxes that keep their size, on ``rfftn`` halves (…, n, …, n // 2 + 1) of d
    dims: the point n // 2 + ``offset_px`` (…, d, array order) moves to pixel n // 2 (an even box's Nyquist
    planes dropped)."""
    d = offset_px.shape[-1]
    k_full = _integer_frequencies(n, spec.device).to(torch.float64)
    lead = offset_px.shape[:-1]
    for axis in range(d):
        k = k_full if axis < d - 1 else k_full[: n // 2 + 1].abs()
        keep = (k.abs() < n / 2.0).to(torch.float64)
        factor = torch.polar(keep, (2 * math.pi / n) * k * offset_px[..., axis, None].to(torch.float64))
        shape = [1] * d
        shape[axis] = len(k)
        spec = spec * factor.to(spec.dtype).reshape(*lead, *shape)
    return spec


def _shift_half(volumes: torch.Tensor, offset_px: torch.Tensor) -> torch.Tensor:
    """(m, n, n, n) real boxes whose point n // 2 + ``offset_px`` (m, 3) moves to voxel n // 2 (``_ramp_half``)."""
    n = volumes.shape[-1]
    spec = _ramp_half(torch.fft.rfftn(volumes, dim=(-3, -2, -1)), offset_px, n)
    return torch.fft.irfftn(spec, s=(n, n, n), dim=(-3, -2, -1)).to(torch.float32)


def _gather(
    data: np.ndarray | torch.Tensor, corner: np.ndarray, n: int, lead: np.ndarray | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes (m, n^d) of ``data`` (…, d dims) with corner indices ``corner`` (m, d); outside → NaN mask.

    ``lead`` (m,) indexes the first axis of ``data`` (the view of a stack). Returns (boxes float32, inside)."""
    m, d = corner.shape
    shape = data.shape[-d:]
    r = np.arange(n)
    idx, inside = [], np.ones((m, *([n] * d)), dtype=bool)
    for axis in range(d):
        i = corner[:, axis, None] + r  # (m, n)
        ok = (i >= 0) & (i < shape[axis])
        view = [m] + [1] * d
        view[1 + axis] = n
        idx.append(np.clip(i, 0, shape[axis] - 1).reshape(view))
        inside &= ok.reshape(view)
    key = tuple(idx) if lead is None else (np.asarray(lead).reshape([m] + [1] * d), *idx)
    if isinstance(data, torch.Tensor):
        boxes = data[tuple(torch.as_tensor(k, device=data.device) for k in key)].to(torch.float32)
        return boxes, torch.as_tensor(inside, device=data.device)
    return torch.as_tensor(np.asarray(data[key], dtype=np.float32)), torch.as_tensor(inside)


def _prepare(boxes: torch.Tensor, inside: torch.Tensor, d: int, *, invert: bool, normalise: bool) -> torch.Tensor:
    """Over the last ``d`` dims: pixels not ``inside`` → the box's mean inside; inverted about it; mean 0
    (and SD 1 with ``normalise``)."""
    dims = tuple(range(-d, 0))
    if bool(inside.all()):  # every pixel inside (the usual case): no mask to apply
        mean = boxes.mean(dim=dims, keepdim=True)
        x = boxes - mean if not invert else mean - boxes
        if normalise:
            sd = torch.sqrt((x * x).mean(dim=dims, keepdim=True))
            x = x / torch.where(sd > 0, sd, torch.ones_like(sd))
        return x
    w = inside.to(boxes.dtype)
    count = w.sum(dim=dims, keepdim=True).clamp(min=1)
    mean = (boxes * w).sum(dim=dims, keepdim=True) / count
    x = torch.where(inside, boxes, mean) - mean
    if invert:
        x = -x
    if normalise:
        sd = torch.sqrt((x * x * w).sum(dim=dims, keepdim=True) / count)
        x = x / torch.where(sd > 0, sd, torch.ones_like(sd))
    return x


@dataclass(frozen=True)
class Subtomograms:
    """Extracted 3D boxes (n, box, box, box) float32 (z, y, x), the particle at voxel box // 2, and their
    pixel size (Å)."""

    boxes: torch.Tensor
    pixel_size_A: float


def extract_subtomograms(
    tomogram: np.ndarray | torch.Tensor,
    positions_A: ArrayLike,
    *,
    pixel_size_A: float,
    box: int,
    output_pixel_size_A: float | None = None,
    invert: bool = False,
    normalise: bool = True,
    batch: int = 64,
    device: torch.device | str | None = None,
) -> Subtomograms:
    """3D boxes around particles, centred to a fraction of a voxel and resampled in Fourier space.

    Parameters
    ----------
    tomogram : numpy.ndarray (may be memory-mapped) or torch.Tensor, (Z, Y, X)
        The tomogram, voxel ``pixel_size_A``; read box by box.
    positions_A : array, (n, 3)
        Particle centres (x, y, z), Å from the tomogram's centre (voxel N // 2), shifts included.
    pixel_size_A : float
        Voxel size of the tomogram, Å.
    box : int
        Output box (voxels).
    output_pixel_size_A : float, optional
        Output voxel size, Å (default the tomogram's); the exact one is ``source_box``'s and is returned.
    invert : bool
        Invert the contrast (dark protein becomes bright).
    normalise : bool
        Each box to mean 0, SD 1 (else mean 0 only); voxels outside the tomogram take the box's mean.
    batch : int
        Particles per batch (the work is vectorised within a batch).
    device : torch.device or str, optional
        Where to compute (default CPU).

    Returns
    -------
    Subtomograms
        Boxes (n, box, box, box) on ``device`` and their voxel size (Å).
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    pos = np.asarray(positions_A, dtype=np.float64).reshape(-1, 3)
    n_src, out_pixel = source_box(box, pixel_size_A, output_pixel_size_A or pixel_size_A)
    centre_zyx = pos[:, ::-1] / pixel_size_A + np.array([s // 2 for s in tomogram.shape[-3:]])
    whole = np.round(centre_zyx).astype(np.int64)
    out = torch.empty((len(pos), box, box, box), dtype=torch.float32, device=dev)
    source = tomogram.to(dev) if isinstance(tomogram, torch.Tensor) else tomogram
    for start in range(0, len(pos), batch):
        sl = slice(start, start + batch)
        boxes, inside = _gather(source, whole[sl] - n_src // 2, n_src)
        x = _prepare(boxes.to(dev), inside.to(dev), 3, invert=invert, normalise=False)
        offset = torch.as_tensor(centre_zyx[sl] - whole[sl], device=dev)
        if n_src == box:  # not resampled: the real half of the spectrum is enough (same result, half the work)
            x = _shift_half(x, offset)
        else:
            spec = recentre_spectrum(torch.fft.fftn(x, dim=(-3, -2, -1)), offset, box)
            x = torch.fft.ifftn(spec, dim=(-3, -2, -1)).real.to(torch.float32)
        out[sl] = _prepare(
            x, torch.ones(x.shape[-3:], dtype=torch.bool, device=dev), 3, invert=False, normalise=normalise
        )
    return Subtomograms(out, out_pixel)


def _beam_grid(box: int, pixel_size_A: float, device: torch.device) -> torch.Tensor:
    """(box, box, box // 2 + 1, 3) frequencies (kx, ky, kz) in 1/Å of the rfftn grid of a cube."""
    k = torch.fft.fftfreq(box, d=pixel_size_A, device=device, dtype=torch.float64)
    kr = torch.fft.rfftfreq(box, d=pixel_size_A, device=device, dtype=torch.float64)
    gz, gy, gx = torch.meshgrid(k, k, kr, indexing="ij")
    return torch.stack([gx, gy, gz], dim=-1)


def batched_ctf(
    kx: torch.Tensor,
    ky: torch.Tensor,
    defocus_u_A: torch.Tensor,
    defocus_v_A: torch.Tensor,
    astigmatism_deg: torch.Tensor,
    optics: Optics,
) -> torch.Tensor:
    """The CTF at image frequencies (kx, ky) (1/Å) for defoci broadcast against them (Å, degrees)."""
    theta = torch.atan2(ky, kx)
    df = 0.5 * (
        defocus_u_A
        + defocus_v_A
        + (defocus_u_A - defocus_v_A) * torch.cos(2 * (theta - torch.deg2rad(astigmatism_deg)))
    )
    chi = ctf_phase(torch.sqrt(kx * kx + ky * ky), df, optics.voltage_kV, optics.cs_mm)
    return ctf_from_phase(chi, optics.amplitude_contrast)


def subtomogram_weights(
    box: int,
    pixel_size_A: float,
    view_matrices: ArrayLike,
    *,
    dose_e_A2: Sequence[float] | None = None,
    defocus_A: ArrayLike | None = None,
    optics: Optics | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The 3D transfer of subtomograms (missing wedge, |CTF|, dose) on the rfftn grid, tomogram frame.

    Parameters
    ----------
    box : int
        Box size (voxels).
    pixel_size_A : float
        Voxel size, Å.
    view_matrices : array, (v, 3, 3)
        Rz(ZRot) · Ry(YTilt) · Rx(XTilt) of each included view.
    dose_e_A2 : sequence of float, optional
        Accumulated dose of each view (e/Å²); none: no attenuation.
    defocus_A : array, (n, v, 3), optional
        Per particle and view: defocus U, V (Å, at the particle's height) and astigmatism angle (degrees);
        none: no CTF.
    optics : Optics, optional
        Voltage, Cs, amplitude contrast (for the CTF and the dose's voltage).
    device : torch.device or str, optional
        Where to compute.

    Returns
    -------
    torch.Tensor, float32, (n or 1, box, box, box // 2 + 1)
        Σ_i max(0, 1 − |k · d_i| L) · |CTF_i| · q_i(|k|), L = box · pixel size (see the module docstring).
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    optics = optics or Optics()
    r = np.asarray(view_matrices, dtype=np.float64).reshape(-1, 3, 3)
    k = _beam_grid(box, pixel_size_A, dev)
    length = box * pixel_size_A
    two_ne = 2 * critical_exposure(torch.linalg.vector_norm(k, dim=-1), voltage_kV=optics.voltage_kV)
    n = 1 if defocus_A is None else int(np.shape(defocus_A)[0])
    coeffs = None
    if defocus_A is not None:
        # Δf_p(θ) = a_p + b_p cos 2θ + c_p sin 2θ: the CTF phase is linear in three numbers per particle and view
        d = np.asarray(defocus_A, dtype=np.float64).reshape(n, -1, 3)
        two_alpha = 2 * np.deg2rad(d[..., 2])
        half_diff = 0.5 * (d[..., 0] - d[..., 1])
        abc = np.stack([0.5 * (d[..., 0] + d[..., 1]), half_diff * np.cos(two_alpha), half_diff * np.sin(two_alpha)])
        coeffs = torch.as_tensor(abc.transpose(2, 1, 0), dtype=torch.float32, device=dev)  # (v, n, 3)
        lam = electron_wavelength_A(optics.voltage_kV)
        spherical = 0.5 * math.pi * optics.cs_mm * 1e7 * lam**3
        amplitude_phase = math.asin(optics.amplitude_contrast)  # |CTF| = |sin(χ + asin A)|
    total = torch.zeros((n, k[..., 0].numel()), dtype=torch.float32, device=dev)
    flat = k.reshape(-1, 3)
    for i in range(len(r)):  # views (tens), every particle at once, on the voxels of the view's slice only
        rz = flat @ torch.as_tensor(r[i, 2], device=dev)
        on = torch.nonzero(rz.abs() * length < 1.0).squeeze(1)
        w = 1.0 - rz[on].abs() * length
        if dose_e_A2 is not None:
            w = w * torch.exp(-float(dose_e_A2[i]) / two_ne.reshape(-1)[on])
        if coeffs is not None:
            rk = flat[on] @ torch.as_tensor(r[i, :2].T, device=dev)  # (m, 2) the view's image frequency
            k2 = (rk * rk).sum(-1)
            theta2 = 2 * torch.atan2(rk[:, 1], rk[:, 0])
            basis = (math.pi * lam) * torch.stack([k2, k2 * torch.cos(theta2), k2 * torch.sin(theta2)])  # (3, m)
            offset = (amplitude_phase - spherical * k2 * k2).to(torch.float32)
            chi = torch.addmm(offset[None], coeffs[i], basis.to(torch.float32))  # (n, m) χ + asin A
            total.index_add_(1, on, torch.sin(chi).abs_().mul_(w.to(torch.float32)))
        else:
            total.index_add_(1, on, w.to(torch.float32).expand(n, -1))
    return total.reshape(n, *k.shape[:-1])


@dataclass(frozen=True)
class ParticleViewStack:
    """Views of particles cut from a tilt series: ``views`` (n, v, crop, crop) float32 (y, x), the particle's
    projected centre at pixel crop // 2; ``defocus_A`` (n, v, 3) the CTF there (U, V at the particle's height,
    Å; astigmatism angle, degrees); ``pixel_size_A`` of the views."""

    views: torch.Tensor
    defocus_A: np.ndarray
    pixel_size_A: float


def project_particles(
    positions_A: ArrayLike, view_matrices: ArrayLike, shifts_A: ArrayLike, magnification: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Where particles land in each view and their height there.

    Parameters
    ----------
    positions_A : array, (n, 3)
        Particle centres (x, y, z), Å from the tomogram's centre.
    view_matrices : array, (v, 3, 3)
        Rz(ZRot) · Ry(YTilt) · Rx(XTilt) of each view.
    shifts_A : array, (v, 2)
        (XShift, YShift) of each view, Å.
    magnification : array, (v,), optional
        Relative magnification of each view (default 1).

    Returns
    -------
    (numpy.ndarray (n, v, 2), numpy.ndarray (n, v))
        Image positions (x, y), Å from the image centre; heights (R X)_z, Å towards the source.
    """
    x = np.asarray(positions_A, dtype=np.float64).reshape(-1, 3)
    r = np.asarray(view_matrices, dtype=np.float64).reshape(-1, 3, 3)
    m = np.ones(len(r)) if magnification is None else np.asarray(magnification, dtype=np.float64)
    rx = np.einsum("vab,nb->nva", r, x)
    return rx[..., :2] * m[None, :, None] + np.asarray(shifts_A, dtype=np.float64)[None], rx[..., 2]


def extract_particle_views(
    images: np.ndarray | torch.Tensor,
    positions_A: ArrayLike,
    *,
    view_matrices: ArrayLike,
    shifts_A: ArrayLike,
    pixel_size_A: float,
    box: int,
    cropped_box: int | None = None,
    binning: float = 1.0,
    defocus_A: ArrayLike | None = None,
    dose_e_A2: ArrayLike | None = None,
    optics: Optics | None = None,
    premultiply_ctf: bool = True,
    dose_weight: bool = True,
    invert: bool = False,
    normalise: bool = True,
    magnification: ArrayLike | None = None,
    batch: int = 16,
    device: torch.device | str | None = None,
) -> ParticleViewStack:
    """Pseudo-subtomogram views: each view cut at the particle's projected centre, CTF-premultiplied at its
    height and dose-weighted (see the module docstring).

    Parameters
    ----------
    images : numpy.ndarray or torch.Tensor, (v, Y, X)
        The views to use (excluded views left out), pixel ``pixel_size_A``.
    positions_A : array, (n, 3)
        Particle centres (x, y, z), Å from the tomogram's centre, shifts included.
    view_matrices, shifts_A : array, (v, 3, 3) and (v, 2)
        The projection model of the views: Rz · Ry · Rx and (XShift, YShift) in Å.
    pixel_size_A : float
        Pixel size of ``images``, Å.
    box : int
        Box (pixels of the output) in which the CTF is applied.
    cropped_box : int, optional
        The views' final size (≤ ``box``, default ``box``), cut about the centre.
    binning : float
        Output pixel = ``pixel_size_A`` × ``binning`` (exactly: ``source_box``).
    defocus_A : array, (v, 3), optional
        Defocus U, V (Å, at the tomogram's centre) and astigmatism angle (degrees) of each view.
    dose_e_A2 : array, (v,), optional
        Accumulated dose of each view, e/Å².
    optics : Optics, optional
        Voltage, Cs and amplitude contrast.
    premultiply_ctf, dose_weight : bool
        Multiply by the CTF (needs ``defocus_A``); attenuate by the dose (needs ``dose_e_A2``).
    invert, normalise : bool
        Invert the contrast; each cut box to mean 0 and SD 1 before filtering (else mean 0).
    magnification : array, (v,), optional
        Relative magnification of each view.
    batch : int
        Particles per vectorised batch.
    device : torch.device or str, optional
        Where to compute.

    Returns
    -------
    ParticleViewStack
        The views (n, v, crop, crop), each particle's defocus per view and the pixel size.
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    optics = optics or Optics()
    crop = box if cropped_box is None else int(cropped_box)
    if not 2 <= crop <= box:
        raise ValueError(f"cropped box must be between 2 and the box ({box}), got {crop}")
    pos = np.asarray(positions_A, dtype=np.float64).reshape(-1, 3)
    r = np.asarray(view_matrices, dtype=np.float64).reshape(-1, 3, 3)
    v = len(r)
    n_src, out_pixel = source_box(box, pixel_size_A, pixel_size_A * binning)
    uv, height = project_particles(pos, r, shifts_A, magnification)
    centre_yx = uv[..., ::-1] / pixel_size_A + np.array([images.shape[-2] // 2, images.shape[-1] // 2])
    whole = np.round(centre_yx).astype(np.int64)
    df = None
    if defocus_A is not None:
        d0 = np.asarray(defocus_A, dtype=np.float64).reshape(v, 3)
        df = np.broadcast_to(d0, (len(pos), v, 3)).copy()
        df[..., :2] += height[..., None]
    doses = None if dose_e_A2 is None else torch.as_tensor(np.asarray(dose_e_A2, dtype=np.float64), device=dev)
    half = n_src == box  # not resampled: the real half of each spectrum is enough
    k = torch.fft.fftfreq(box, d=out_pixel, device=dev, dtype=torch.float64)
    k_x = torch.fft.rfftfreq(box, d=out_pixel, device=dev, dtype=torch.float64) if half else k
    ky, kx = torch.meshgrid(k, k_x, indexing="ij")
    width = len(k_x)
    attenuation = None
    if dose_weight and doses is not None:
        ne = critical_exposure(torch.sqrt(kx * kx + ky * ky), voltage_kV=optics.voltage_kV)
        attenuation = torch.exp(-doses[:, None, None] / (2 * ne)).to(torch.float32)  # (v, box, box)
    ctf_terms = None
    if premultiply_ctf and df is not None:
        # Δf(θ) = a + b cos 2θ + c sin 2θ: χ + asin A is one matrix product per batch, CTF = −sin(χ + asin A)
        k2 = kx * kx + ky * ky
        theta2 = 2 * torch.atan2(ky, kx)
        lam = electron_wavelength_A(optics.voltage_kV)
        basis = (math.pi * lam) * torch.stack([k2, k2 * torch.cos(theta2), k2 * torch.sin(theta2)]).reshape(3, -1)
        offset = math.asin(optics.amplitude_contrast) - 0.5 * math.pi * optics.cs_mm * 1e7 * lam**3 * k2 * k2
        two_alpha = 2 * np.deg2rad(df[..., 2])
        half_diff = 0.5 * (df[..., 0] - df[..., 1])
        abc = np.stack(
            [0.5 * (df[..., 0] + df[..., 1]), half_diff * np.cos(two_alpha), half_diff * np.sin(two_alpha)], -1
        )
        ctf_terms = (
            torch.as_tensor(abc, dtype=torch.float32, device=dev),  # (n, v, 3)
            basis.to(torch.float32),
            offset.reshape(-1).to(torch.float32),
        )
    source = images.to(dev) if isinstance(images, torch.Tensor) else images
    lo = box // 2 - crop // 2
    out = torch.empty((len(pos), v, crop, crop), dtype=torch.float32, device=dev)
    view_index = np.arange(v)
    for start in range(0, len(pos), batch):
        sl = slice(start, start + batch)
        m = len(pos[sl])
        corner = (whole[sl] - n_src // 2).reshape(-1, 2)
        boxes, inside = _gather(source, corner, n_src, lead=np.tile(view_index, m))
        x = _prepare(boxes.to(dev), inside.to(dev), 2, invert=invert, normalise=normalise)
        offset = torch.as_tensor((centre_yx[sl] - whole[sl]).reshape(-1, 2), device=dev)
        if half:
            spec = _ramp_half(torch.fft.rfft2(x), offset, box).reshape(m, v, box, width)
        else:
            spec = recentre_spectrum(torch.fft.fft2(x), offset, box).reshape(m, v, box, box)
        filt = None
        if ctf_terms is not None:
            coeffs, basis, phase0 = ctf_terms
            filt = torch.sin(torch.addmm(phase0, coeffs[sl].reshape(-1, 3), basis)).neg_().reshape(m, v, box, width)
        if attenuation is not None:
            filt = attenuation.expand(m, -1, -1, -1) if filt is None else filt * attenuation
        if filt is not None:
            spec = spec * filt
        views = torch.fft.irfft2(spec, s=(box, box)) if half else torch.fft.ifft2(spec).real
        out[sl] = views[..., lo : lo + crop, lo : lo + crop].to(torch.float32)
    if df is None:
        df = np.zeros((len(pos), v, 3))
    return ParticleViewStack(out, df, out_pixel)


__all__ = [
    "ParticleViewStack",
    "Subtomograms",
    "extract_particle_views",
    "project_particles",
    "batched_ctf",
    "extract_subtomograms",
    "recentre_spectrum",
    "source_box",
    "subtomogram_weights",
]
