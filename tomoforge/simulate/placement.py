"""Many particles at once: batched central-slice projections pasted into height slabs, and the CTF of
every height slab of a tilt from one phase grid.

``project_batch`` gives the same images as ``methods.projection.project_fourier_slice`` called once per
particle (the same trilinear sampling of the prepared spectrum, the same sub-pixel phase ramp), for a batch
of rotations and shifts in one ``grid_sample`` and one batched inverse FFT. ``paste_into_slabs`` adds
(b, n, n) patches into (slabs, y, x) images with one ``index_add_``. ``SlabCTF`` computes the phase χ of
a tilt once and, per slab at height h, only CTF(h) = −sin(χ₀ + π λ h k² + asin A): the same values as
``ctf_2d`` at defocus + h.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from tomoforge.methods.ctf.transfer import astigmatic_defocus, ctf_phase, electron_wavelength_A
from tomoforge.methods.fourier import frequency_grid_2d
from tomoforge.methods.projection import FourierVolume

BATCH_VALUES = 1 << 22  # complex values of a batch of projections (b · n²): ~32 MB at a time


def _centred_frequencies(n: int) -> torch.Tensor:
    """(n, n, 2) integer frequencies (kx, ky) of a centred n × n grid (DC at n // 2)."""
    k = torch.arange(n, dtype=torch.float32) - n // 2
    ky, kx = torch.meshgrid(k, k, indexing="ij")
    return torch.stack([kx, ky], dim=-1)


def project_batch(fv: FourierVolume, rotations: np.ndarray, shifts_xy_px: np.ndarray) -> torch.Tensor:
    """Projections (b, n, n) (y, x) along z of the volume turned by each of ``rotations`` (b, 3, 3), moved by
    ``shifts_xy_px`` (b, 2) pixels (sub-pixel, Fourier phase ramp); line integrals in value · Å.

    The spectrum is sampled at k · R (frequencies with k_z = 0), trilinearly as ``project_fourier_slice``."""
    n = fv.n
    b = len(rotations)
    if b == 0:
        return torch.zeros(0, n, n)
    k2 = _centred_frequencies(n).to(fv.device)  # (n, n, 2)
    r = torch.as_tensor(np.asarray(rotations), dtype=torch.float32, device=fv.device)[:, :2, :]  # (b, 2, 3)
    src = torch.einsum("yxi,bij->byxj", k2, r)  # (b, n, n, 3): source frequency (x, y, z)
    grid = (src + n // 2) * (2.0 / (n - 1)) - 1.0
    out = F.grid_sample(
        fv.spectrum[None], grid.reshape(1, 1, b, n * n, 3), mode="bilinear", padding_mode="zeros", align_corners=True
    ).reshape(2, b, n, n)
    s = torch.as_tensor(np.asarray(shifts_xy_px), dtype=torch.float32, device=fv.device)  # (b, 2)
    phase = torch.einsum("yxi,bi->byx", k2, s) * (-2 * math.pi / n)
    spec = torch.complex(out[0], out[1]) * torch.polar(torch.ones_like(phase), phase)
    images = torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(spec, dim=(-2, -1))), dim=(-2, -1)).real
    return images * fv.pixel_size_A


def paste_into_slabs(
    canvas: torch.Tensor, patches: torch.Tensor, slab: np.ndarray, centre_yx: np.ndarray, pad: int
) -> None:
    """Add ``patches`` (b, n, n) into ``canvas`` (slabs, ny + 2·pad, nx + 2·pad) in place: patch i's pixel
    (n // 2, n // 2) at image pixel ``centre_yx[i]`` of slab ``slab[i]`` (the image starts at ``pad``);
    every patch must lie inside the padded canvas."""
    b, n = patches.shape[0], patches.shape[-1]
    if b == 0:
        return
    _, hp, wp = canvas.shape
    top = torch.as_tensor(np.asarray(centre_yx)[:, 0] - n // 2 + pad, dtype=torch.int64)
    left = torch.as_tensor(np.asarray(centre_yx)[:, 1] - n // 2 + pad, dtype=torch.int64)
    if int(top.min()) < 0 or int(left.min()) < 0 or int(top.max()) + n > hp or int(left.max()) + n > wp:
        raise ValueError("a patch reaches outside the padded canvas")
    ar = torch.arange(n, dtype=torch.int64)
    s = torch.as_tensor(np.asarray(slab), dtype=torch.int64)
    index = s[:, None, None] * (hp * wp) + (top[:, None, None] + ar[None, :, None]) * wp + (left[:, None, None] + ar)
    canvas.view(-1).index_add_(0, index.reshape(-1), patches.reshape(-1).to(canvas.dtype))


def batch_size(n: int) -> int:
    """How many n × n projections make one batch."""
    return max(1, BATCH_VALUES // (n * n))


class SlabCTF:
    """CTF(defocus + h) on the rfft grid of an image for many heights h, from one phase grid per tilt."""

    def __init__(
        self,
        shape: tuple[int, int],
        pixel_size_A: float,
        defocus_u_A: float,
        defocus_v_A: float,
        astigmatism_angle_deg: float,
        *,
        voltage_kV: float,
        cs_mm: float,
        amplitude_contrast: float,
    ) -> None:
        if defocus_u_A < defocus_v_A:
            raise ValueError(f"defocus_u_A ({defocus_u_A}) must be >= defocus_v_A ({defocus_v_A})")
        ky, kx = frequency_grid_2d(shape, pixel_size_A, True)
        ky, kx = ky.to(torch.float64), kx.to(torch.float64)
        k2 = ky * ky + kx * kx
        dfz = astigmatic_defocus(ky, kx, defocus_u_A, defocus_v_A, astigmatism_angle_deg)
        # −[√(1 − A²) sin χ + A cos χ] = −sin(χ + asin A)
        self._phase = ctf_phase(torch.sqrt(k2), dfz, voltage_kV, cs_mm) + math.asin(amplitude_contrast)
        self._per_height = math.pi * electron_wavelength_A(voltage_kV) * k2  # dχ/dh (rad/Å)

    def at(self, height_A: float) -> torch.Tensor:
        """float32 CTF at defocus + ``height_A`` (Å; the heights of ``ctf_2d``)."""
        return (-torch.sin(self._phase + height_A * self._per_height)).to(torch.float32)
