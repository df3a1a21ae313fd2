"""What multiplies each inserted view's spectrum: its CTF at the particle and its dose attenuation
(``ViewFilters``), evaluated at the frequencies a view inserts (``view_filters``), for
``methods.sta.insertion``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tomoforge.methods.ctf.transfer import ctf_from_phase, ctf_phase
from tomoforge.methods.preprocess.dose import exposure_attenuation


@dataclass(frozen=True, kw_only=True)
class ViewFilters:
    """What multiplies each view's spectrum: its CTF at the particle and its dose attenuation.

    Parameters
    ----------
    defocus_u_A, defocus_v_A, astigmatism_deg : numpy.ndarray, (n,)
        The CTF of each view at the particle's height: defocus (Å, underfocus positive, U ≥ V) and the
        angle of U from the image x axis (degrees).
    dose_e_A2 : numpy.ndarray, (n,)
        Accumulated dose of each view (e/Å²); zeros for no dose attenuation.
    pixel_size_A, voltage_kV, cs_mm, amplitude_contrast : float
        The views' pixel size (Å) and the microscope (kV, mm, fraction).
    ctf_premultiplied : bool
        The views were multiplied by their CTF already (only the weight gets CTF²).
    dose_weighted : bool
        The views were attenuated by their dose already (only the weight gets q²).
    use_ctf : bool
        False: ignore the CTF entirely (phase-flipped or simulated views without one).
    """

    defocus_u_A: np.ndarray
    defocus_v_A: np.ndarray
    astigmatism_deg: np.ndarray
    dose_e_A2: np.ndarray
    pixel_size_A: float
    voltage_kV: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.07
    ctf_premultiplied: bool = False
    dose_weighted: bool = False
    use_ctf: bool = True

    def take(self, index: np.ndarray) -> ViewFilters:
        """The filters of the views ``index`` (an index array or boolean mask)."""
        return ViewFilters(
            defocus_u_A=np.asarray(self.defocus_u_A)[index],
            defocus_v_A=np.asarray(self.defocus_v_A)[index],
            astigmatism_deg=np.asarray(self.astigmatism_deg)[index],
            dose_e_A2=np.asarray(self.dose_e_A2)[index],
            pixel_size_A=self.pixel_size_A,
            voltage_kV=self.voltage_kV,
            cs_mm=self.cs_mm,
            amplitude_contrast=self.amplitude_contrast,
            ctf_premultiplied=self.ctf_premultiplied,
            dose_weighted=self.dose_weighted,
            use_ctf=self.use_ctf,
        )


def view_filters(
    filters: ViewFilters | None, k_xy: torch.Tensor, b: int, device: torch.device
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(data multiplier, weight) (B, p) float32 per view at the p frequencies ``k_xy`` (p, 2) of a b-pixel
    view; None where 1.

    Astigmatic defocus Δf(θ) = ½ [U + V + (U − V) cos 2(θ − a)] (``astigmatic_defocus``) with
    cos 2(θ − a) = cos 2θ cos 2a + sin 2θ sin 2a: cos 2θ = (kx² − ky²) / k² and sin 2θ = 2 kx ky / k² once per
    frequency, cos 2a and sin 2a once per view. float32 (χ of a few hundred radians keeps ~1e-4 rad)."""
    if filters is None:
        return None, None
    f32 = torch.float32
    inv = 1.0 / (b * filters.pixel_size_A)  # the views' frequency unit in 1/Å
    kx, ky = k_xy[..., 0] * inv, k_xy[..., 1] * inv
    k2 = kx * kx + ky * ky
    k = torch.sqrt(k2)
    total: torch.Tensor | None = None
    data: torch.Tensor | None = None
    if filters.use_ctf:
        u = torch.as_tensor(np.asarray(filters.defocus_u_A, float), dtype=f32, device=device)[:, None]
        v = torch.as_tensor(np.asarray(filters.defocus_v_A, float), dtype=f32, device=device)[:, None]
        two_a = torch.as_tensor(np.deg2rad(2 * np.asarray(filters.astigmatism_deg, float)), dtype=f32, device=device)
        safe = torch.where(k2 > 0, k2, 1.0)
        cos2t = torch.where(k2 > 0, (kx * kx - ky * ky) / safe, 1.0)
        sin2t = 2 * kx * ky / safe
        cos_diff = cos2t * torch.cos(two_a)[:, None] + sin2t * torch.sin(two_a)[:, None]  # (B, p)
        defocus = 0.5 * (u + v) + 0.5 * (u - v) * cos_diff
        ctf = ctf_from_phase(ctf_phase(k, defocus, filters.voltage_kV, filters.cs_mm), filters.amplitude_contrast)
        total = ctf
        if not filters.ctf_premultiplied:
            data = ctf
    dose_e = np.asarray(filters.dose_e_A2, float)
    if bool(np.any(dose_e > 0)):
        dose = torch.as_tensor(dose_e, device=device)[:, None]
        q = exposure_attenuation(k.to(torch.float64), dose, voltage_kV=filters.voltage_kV).to(f32)  # type: ignore[arg-type]
        total = q if total is None else total * q
        if not filters.dose_weighted:
            data = q if data is None else data * q
    n = len(dose_e)
    ones = torch.ones((n, len(k)), dtype=f32, device=device)
    return (ones if data is None else data), (ones if total is None else total * total)


__all__ = ["ViewFilters", "view_filters"]
