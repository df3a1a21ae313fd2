"""The Thon-ring model on the polar grid of the strips of a (tilted) image, and its score.

For a strip whose centre lies ``δ`` Å higher than the tilt axis (towards the source), the defocus
is Δf(θ) + δ (CONVENTIONS / simulator: defocus at height h = DefocusU/V + h), with
Δf(θ) = mean + a_x cos 2θ + a_y sin 2θ (so ΔU, ΔV = mean ± √(a_x² + a_y²), angle of U = ½ atan2(a_y, a_x)).
CTF = −sin(χ + α) with sin α = amplitude contrast, so CTF² = ½ − ½ cos(2χ + 2α). Across one box the
height also changes (the box is tilted): averaging over heights uniform in ±H₁ and ±H₂ (the box's
half-extents perpendicular to the axis, along its two edges) multiplies the cosine by
sinc(ω H₁) sinc(ω H₂), ω = 2πλk² (rad per Å of defocus), which is how rings fade and flip on
strongly tilted images. The score is CTFFIND's normalised cross-correlation of the background-
subtracted amplitude spectrum and the model, both high-passed alike, with each frequency weighted
by its pixel count × k² (the defocus sensitivity of the phase, ∂χ/∂Δf = πλk², so that the broad
low-frequency rings, which a specimen's own structure factor mimics, do not decide the fit alone).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from tomoforge.methods.ctf.estimate.background import ring_period_k, running_mean, running_median
from tomoforge.methods.ctf.estimate.spectra import PolarGrid
from tomoforge.methods.ctf.settings import Optics as Microscope
from tomoforge.methods.ctf.transfer import electron_wavelength_A

MICROSCOPE = Microscope()  # the default microscope constants
MIN_PERIOD_PX = 3.0  # the densest Thon rings fitted: one ring period in px of the spectrum's box


@dataclass
class Optics:
    """Microscope constants: pixel size (Å), voltage (kV), Cs (mm), amplitude contrast (fraction)."""

    pixel_size_A: float
    voltage_kV: float = MICROSCOPE.voltage_kV
    cs_mm: float = MICROSCOPE.cs_mm
    amplitude_contrast: float = MICROSCOPE.amplitude_contrast

    @property
    def wavelength_A(self) -> float:
        return electron_wavelength_A(self.voltage_kV)


@dataclass
class StripSpectra:
    """Amplitude spectra of the strips of one image on a polar grid, with their height geometry.

    ``amplitude`` (s, a, r); ``offset_A`` (s,): height of each strip centre above the tilt axis (Å,
    added to the defocus); ``smear_A`` (2,): half-ranges (Å) of height across one box.
    """

    grid: PolarGrid
    amplitude: torch.Tensor
    offset_A: torch.Tensor
    smear_A: tuple[float, float]

    def to(self, device: torch.device | str) -> StripSpectra:
        """A copy on ``device`` (CPU or GPU)."""
        g = self.grid
        grid = PolarGrid(
            g.box,
            g.pixel_size_A,
            g.n_angles,
            g.index.to(device),
            g.k_A.to(device),
            g.theta.to(device),
            g.counts.to(device),
        )
        return StripSpectra(grid, self.amplitude.to(device), self.offset_A.to(device), self.smear_A)


def ring_model(
    spectra: StripSpectra,
    optics: Optics,
    mean_A: torch.Tensor,
    ax_A: torch.Tensor | None,
    ay_A: torch.Tensor | None,
    phase_rad: torch.Tensor,
    gradient_scale: torch.Tensor | float = 1.0,
) -> torch.Tensor:
    """−½ S cos(2χ + 2α) for candidates (c,) of the parameters: (c, s, a, r), float32.

    ``gradient_scale`` multiplies the strips' height offsets (1: the geometry; −1: the opposite hand).
    Without astigmatism (``ax_A`` and ``ay_A`` None) the model is the same at every angle and is
    returned once: (c, s, 1, r).
    """
    lam, cs = optics.wavelength_A, optics.cs_mm * 1e7
    alpha = math.asin(optics.amplitude_contrast)
    g = spectra.grid
    k2 = (g.k_A.to(torch.float32) ** 2)[None, None, None, :]
    col = (-1, 1, 1, 1)
    scale = torch.as_tensor(gradient_scale, dtype=torch.float32, device=spectra.amplitude.device).reshape(-1, 1, 1, 1)
    df = mean_A.reshape(col) + scale * spectra.offset_A.to(torch.float32)[None, :, None, None]
    if ax_A is not None and ay_A is not None:
        theta = g.theta.to(torch.float32)[None, None, :, None]
        df = df + ax_A.reshape(col) * torch.cos(2 * theta) + ay_A.reshape(col) * torch.sin(2 * theta)
    chi = math.pi * lam * df * k2 - 0.5 * math.pi * cs * lam**3 * k2 * k2 + phase_rad.reshape(col)
    omega = 2 * math.pi * lam * k2 * scale.abs() / math.pi
    h1, h2 = spectra.smear_A
    smear = torch.sinc(omega * h1) * torch.sinc(omega * h2)
    return -0.5 * smear * torch.cos(2 * chi + 2 * alpha)


def half_window_px(grid: PolarGrid, optics: Optics, defocus_A: float) -> torch.Tensor:
    """Half of one CTF² period (px of radius) at each radius for ``defocus_A``, at most half the radius
    (so that the window stays on its side of the origin): (r,)."""
    k = grid.k_A.to(torch.float32)
    period = ring_period_k(k, torch.tensor(float(defocus_A), device=k.device), optics.wavelength_A, optics.cs_mm)
    h = 0.5 * period * grid.box * grid.pixel_size_A
    r = torch.arange(grid.n_radii, dtype=torch.float32, device=h.device)
    return torch.minimum(h, (0.5 * r).clamp(min=1.0))


def modulation(amplitude: torch.Tensor, half_width: torch.Tensor) -> torch.Tensor:
    """Background-subtracted, background-normalised spectrum (s, a, r): A / G − 1, minus its own running
    mean (the linear operator the model goes through too), with G the background of each strip: the
    running median over one ring period (``half_width`` (r,) px) of A's mean over the angles, then its
    running mean over one period.

    The median alone follows a chirp (the rings' period changes across its window, and its window is a
    whole number of px), which shifts the apparent ring phase: +70 Å of defocus at 3 µm when the fit band
    stops at 10 Å, +170 Å at 12.5 Å (test_estimate.py). Its running mean over one period averages that
    ripple out. One background for all angles: a level that differs between angles (drift, anisotropic
    specimen) only scales that angle's rings once the running mean is subtracted, and the median of the
    angular mean costs 1 / n_angles of the per-angle one (it was half of a fit's time)."""
    h = half_width.reshape(-1)
    background = running_mean(running_median(amplitude.mean(dim=-2, keepdim=True), h), h)
    flat = amplitude / background.clamp(min=1e-20)
    return flat - running_mean(flat, h)


def band_weights(
    grid: PolarGrid, resolution_low_A: float, resolution_high_A: float, power: float = 2.0
) -> torch.Tensor:
    """(a, r) weights: pixel count × (k / 0.1 Å⁻¹)^power inside the fit band (k from 1/low to 1/high,
    below Nyquist), else 0."""
    k = grid.k_A
    nyquist = 0.5 / grid.pixel_size_A
    inside = (k >= 1 / resolution_low_A) & (k <= min(1 / resolution_high_A, 0.98 * nyquist))
    return (grid.counts * (inside * (k / 0.1) ** power)[None, :]).to(torch.float32)


def correlation(data: torch.Tensor, model: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted normalised cross-correlation over the last three axes (s, a, r): (c,). A model (c, s, 1, r)
    (the same at every angle) is correlated with the data's weighted sum over the angles: the same
    number, a factor n_angles cheaper."""
    w = weights[None, None]
    dd = (w * data * data).sum(dim=(-3, -2, -1))
    if model.shape[-2] == 1 and data.shape[-2] != 1:
        summed = (weights * data).sum(dim=-2, keepdim=True)  # (s, 1, r)
        num = (summed * model).sum(dim=(-3, -2, -1))
        mm = (weights.sum(dim=-2, keepdim=True) * model * model).sum(dim=(-3, -2, -1))
    else:
        num = (w * data * model).sum(dim=(-3, -2, -1))
        mm = (w * model * model).sum(dim=(-3, -2, -1))
    return num / (dd * mm).sqrt().clamp(min=1e-20)


def isotropic(ax_A: torch.Tensor, ay_A: torch.Tensor) -> bool:
    """Whether candidates (c,) of astigmatism (a_x, a_y) have none at all and need no gradient through it
    (the model is then the same at every angle)."""
    return not (ax_A.requires_grad or ay_A.requires_grad) and not bool(ax_A.any() or ay_A.any())


@dataclass
class FitTarget:
    """What candidate CTFs of a strip spectra are scored against: the background window ``half_width``
    (r,) px (half a ring period at one defocus), the spectra's ``modulation`` (s, a, r) made with it and
    the ``band_weights`` (a, r)."""

    half_width: torch.Tensor
    data: torch.Tensor
    weights: torch.Tensor


def fit_target(
    spectra: StripSpectra,
    optics: Optics,
    window_defocus_A: float,
    resolution_low_A: float,
    resolution_high_A: float,
    weight_power: float = 2.0,
) -> FitTarget:
    """The target of a fit: background window at ``window_defocus_A`` (Å), band ``resolution_low_A`` to
    ``resolution_high_A`` (Å), frequencies weighted by k to ``weight_power``; the band stops where the
    rings at that defocus are denser than ``MIN_PERIOD_PX`` px of the box (binned and blurred by the
    tile's window, they are gone: a small box in Å at a large defocus)."""
    h = half_window_px(spectra.grid, optics, window_defocus_A)
    weights = band_weights(spectra.grid, resolution_low_A, resolution_high_A, weight_power)
    period = ring_period_k(
        spectra.grid.k_A.to(h.device), torch.tensor(float(window_defocus_A)), optics.wavelength_A, optics.cs_mm
    )
    resolved = period * spectra.grid.box * spectra.grid.pixel_size_A >= MIN_PERIOD_PX
    dense = torch.nonzero(~resolved & (spectra.grid.k_A > 1 / resolution_low_A)).reshape(-1)
    if len(dense):  # from the first frequency where the rings are too dense (Cs can slow them again beyond)
        weights[:, int(dense[0]) :] = 0
    return FitTarget(h, modulation(spectra.amplitude, h), weights)


def scores_against(
    spectra: StripSpectra,
    optics: Optics,
    target: FitTarget,
    mean_A: torch.Tensor,
    ax_A: torch.Tensor,
    ay_A: torch.Tensor,
    phase_rad: torch.Tensor,
) -> torch.Tensor:
    """Scores (c,) of candidates (c,) (mean defocus, a_x, a_y Å, phase rad) in one batch, differentiable."""
    if isotropic(ax_A, ay_A):
        q = ring_model(spectra, optics, mean_A, None, None, phase_rad)
    else:
        q = ring_model(spectra, optics, mean_A, ax_A, ay_A, phase_rad)
    return correlation(target.data, q - running_mean(q, target.half_width), target.weights)


def score_candidates(
    spectra: StripSpectra,
    optics: Optics,
    weights: torch.Tensor,
    data: torch.Tensor,
    half_width: torch.Tensor,
    mean_A: torch.Tensor,
    ax_A: torch.Tensor,
    ay_A: torch.Tensor,
    phase_rad: torch.Tensor,
    gradient_scale: torch.Tensor | float = 1.0,
    chunk_elements: int = 4_000_000,
) -> torch.Tensor:
    """Scores (c,) of a batch of candidate parameters against ``data`` (the modulation of the spectra,
    made with ``half_width``), in chunks so that no tensor exceeds ``chunk_elements``."""
    flat = isotropic(ax_A, ay_A)
    per_candidate = spectra.amplitude.numel() // (spectra.amplitude.shape[-2] if flat else 1)
    step = max(1, chunk_elements // per_candidate)
    c = mean_A.shape[0]
    scale = torch.as_tensor(gradient_scale, dtype=torch.float32, device=data.device).reshape(-1).expand(c)
    h = half_width.reshape(-1)
    out = []
    for i in range(0, c, step):
        sl = slice(i, i + step)
        ax, ay = (None, None) if flat else (ax_A[sl], ay_A[sl])
        q = ring_model(spectra, optics, mean_A[sl], ax, ay, phase_rad[sl], scale[sl])
        out.append(correlation(data, q - running_mean(q, h), weights))
    return torch.cat(out)


@dataclass
class TiltBatch:
    """The strip spectra of several tilts (same polar grid) with their fit targets, stacked so that one
    candidate per tilt is scored in one batch: the strips padded to the most any tilt has (padding
    weighted 0). ``amplitude`` and ``data`` (t, s, a, r); ``offset_A`` (t, s); ``smear_A`` (t, 2);
    ``half_width`` (t, 1, 1, r); ``weights`` (t, s, a, r)."""

    spectra: StripSpectra
    amplitude: torch.Tensor
    offset_A: torch.Tensor
    smear_A: torch.Tensor
    half_width: torch.Tensor
    data: torch.Tensor
    weights: torch.Tensor

    @classmethod
    def of(cls, spectra: list[StripSpectra], targets: list[FitTarget]) -> TiltBatch:
        dev = spectra[0].amplitude.device
        t, s = len(spectra), max(sp.amplitude.shape[0] for sp in spectra)
        a, r = spectra[0].amplitude.shape[1:]
        amplitude = torch.zeros((t, s, a, r), device=dev)
        data = torch.zeros((t, s, a, r), device=dev)
        weights = torch.zeros((t, s, a, r), device=dev)
        offset = torch.zeros((t, s), device=dev)
        for i, (sp, tg) in enumerate(zip(spectra, targets)):  # a copy per tilt (tens of tilts), no pixel loop
            n = sp.amplitude.shape[0]
            amplitude[i, :n], data[i, :n], weights[i, :n], offset[i, :n] = (
                sp.amplitude,
                tg.data,
                tg.weights,
                sp.offset_A,
            )
        smear = torch.tensor([sp.smear_A for sp in spectra], dtype=torch.float32, device=dev)
        half = torch.stack([tg.half_width.reshape(-1) for tg in targets])[:, None, None, :]
        return cls(spectra[0], amplitude, offset, smear, half, data, weights)

    def scores(
        self, optics: Optics, mean_A: torch.Tensor, ax_A: torch.Tensor, ay_A: torch.Tensor, phase_rad: torch.Tensor
    ) -> torch.Tensor:
        """Scores (t,) of one candidate per tilt: means and phases (t,), astigmatism (a_x, a_y) shared
        (scalars) or per tilt (t,); differentiable."""
        lam, cs = optics.wavelength_A, optics.cs_mm * 1e7
        alpha = math.asin(optics.amplitude_contrast)
        g = self.spectra.grid
        k2 = (g.k_A.to(torch.float32) ** 2)[None, None, None, :]
        theta = g.theta.to(torch.float32)[None, None, :, None]
        col = (-1, 1, 1, 1)
        df = (
            mean_A.reshape(col)
            + ax_A.reshape(-1, 1, 1, 1) * torch.cos(2 * theta)
            + ay_A.reshape(-1, 1, 1, 1) * torch.sin(2 * theta)
            + self.offset_A[:, :, None, None]
        )
        chi = math.pi * lam * df * k2 - 0.5 * math.pi * cs * lam**3 * k2 * k2 + phase_rad.reshape(col)
        omega = 2 * lam * k2
        smear = torch.sinc(omega * self.smear_A[:, 0].reshape(col)) * torch.sinc(
            omega * self.smear_A[:, 1].reshape(col)
        )
        q = -0.5 * smear * torch.cos(2 * chi + 2 * alpha)
        model = q - running_mean(q, self.half_width)
        w = self.weights
        num = (w * self.data * model).sum(dim=(-3, -2, -1))
        den = ((w * self.data * self.data).sum(dim=(-3, -2, -1)) * (w * model * model).sum(dim=(-3, -2, -1))).sqrt()
        return num / den.clamp(min=1e-20)
