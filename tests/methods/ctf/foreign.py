"""Tilt series made with a CTF and a specimen that are not the project's: teamtomo's ``torch-ctf``
(``calculate_ctf_2d``) applied to a smooth random phase object (blobs), an amorphous-ice texture (a
fresh white phase field per tilt, in height layers through the ice, which rings to high resolution),
optional gold beads (absorbing 10 nm discs on both surfaces of the slab), on the tilted plane (each
pixel imaged at its own height: slabs of ``slab_A`` under their own defocus), Poisson noise at
``dose`` e/Å² per tilt. Nothing of tomoforge's simulator or transfer functions is used.

Conventions (checked against tomoforge's ``ctf_2d`` in test_foreign.py): torch-ctf's astigmatism
angle is the angle of U from the image X axis on the rfft grid, as tomoforge's; its CTF has the
opposite sign, which a power spectrum does not see. The tilt axis runs along the image Y axis rotated
by ``axis_deg`` and through the image centre; the true mean defocus of each tilt is the one of the
specimen's mid-plane at the image centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Condition:
    """One cell of the matrix: pixel size (Å), mean defocus (µm), dose per tilt (e/Å²), astigmatism
    U − V (Å) and its angle (°), voltage (kV), amplitude contrast, ice texture, gold, image size (px),
    tilt angles (°), tilt axis angle (°), seed."""

    pixel_size_A: float = 2.0
    defocus_um: float = 3.0
    dose: float = 3.0
    astigmatism_A: float = 600.0
    astigmatism_angle_deg: float = 30.0
    voltage_kV: float = 300.0
    amplitude_contrast: float = 0.07
    ice: bool = True
    gold: bool = False
    size: int = 384
    tilts_deg: tuple[float, ...] = (-60.0, -48.0, -36.0, -24.0, -12.0, 0.0, 12.0, 24.0, 36.0, 48.0, 60.0)
    axis_deg: float = 85.0
    seed: int = 0
    cs_mm: float = 2.7
    ice_thickness_A: float = 800.0
    slab_A: float = 80.0

    @property
    def label(self) -> str:
        return (
            f"{self.pixel_size_A:g}A {self.defocus_um:g}um {self.dose:g}e ast{self.astigmatism_A:g} "
            f"{self.voltage_kV:g}kV ac{self.amplitude_contrast:g}{' ice' if self.ice else ''}"
            f"{' gold' if self.gold else ''}"
        )


@dataclass
class ForeignSeries:
    """The images (n, y, x) float32 in acquisition order (dose-symmetric from 0°), their tilt angles (°),
    the true mean defocus of each (Å), the nominal (mdoc-like) defocus of each (Å), the accumulated
    dose (e/Å²) and the condition."""

    images: torch.Tensor
    tilts_deg: list[float]
    defocus_A: list[float]
    nominal_A: list[float]
    accumulated_dose: list[float]
    condition: Condition
    extra: dict[str, float] = field(default_factory=dict)


def _smooth_field(shape: tuple[int, int], sigma_px: float, gen: torch.Generator) -> torch.Tensor:
    """White noise low-passed by a Gaussian of ``sigma_px``, unit SD."""
    ny, nx = shape
    ky = torch.fft.fftfreq(ny)[:, None]
    kx = torch.fft.rfftfreq(nx)[None, :]
    gain = torch.exp(-2 * math.pi**2 * sigma_px**2 * (ky * ky + kx * kx))
    f = torch.fft.irfft2(torch.fft.rfft2(torch.randn(shape, generator=gen)) * gain, s=shape)
    return f / f.std().clamp(min=1e-12)


def _acquisition_order(tilts: list[float]) -> list[int]:
    """Indices of ``tilts`` in dose-symmetric order (0°, then alternating sides outwards)."""
    return sorted(range(len(tilts)), key=lambda i: (abs(tilts[i]), tilts[i] < 0))


def make_series(c: Condition) -> ForeignSeries:
    """The tilt series of condition ``c`` (see the module docstring)."""
    from torch_ctf import calculate_ctf_2d

    gen = torch.Generator().manual_seed(c.seed)
    n, px = c.size, c.pixel_size_A
    order = _acquisition_order(list(c.tilts_deg))
    tilts = [float(c.tilts_deg[i]) for i in order]
    steps = 700.0 * torch.randn(len(tilts), generator=gen)  # ~0.1 µm (RMS) between tilts
    defocus = [c.defocus_um * 1e4 + float(s) for s in steps]
    defocus[0] = c.defocus_um * 1e4
    nominal = [d + float(v) for d, v in zip(defocus, 500.0 * torch.randn(len(tilts), generator=gen))]  # mdoc-like
    y, x = torch.meshgrid(torch.arange(n) - n // 2, torch.arange(n) - n // 2, indexing="ij")
    phi = math.radians(c.axis_deg)
    dist = (x * math.cos(phi) + y * math.sin(phi)).float()  # px from the axis, perpendicular to it
    along = (-x * math.sin(phi) + y * math.cos(phi)).float()
    # the specimen: a smooth random phase object (blobs of ~40 Å and ~150 Å), the same at every tilt
    blobs = 0.25 * _smooth_field((n, n), 20.0 / px, gen) + 0.35 * _smooth_field((n, n), 75.0 / px, gen)
    # gold beads: 10 nm discs at random (X, Y) on the two ice surfaces
    beads = torch.rand((max(3, int(n * n * px * px / 80_000)), 3), generator=gen)
    layers = torch.linspace(-0.5, 0.5, 4) * c.ice_thickness_A if c.ice else torch.zeros(1)
    images, dose_before = [], []
    for i, beta in enumerate(tilts):
        t = math.radians(beta)
        height = -math.tan(t) * px * dist  # the mid-plane's height at each pixel (Å, towards the source)
        fields = [(height, blobs)]
        if c.ice:  # 0.27 rad per 2 Å pixel through the whole ice: per layer, scaled with the pixel area
            sd = 0.27 * (2.0 / px) / math.sqrt(len(layers)) / math.sqrt(math.cos(t))
            fields += [(height + float(z), sd * torch.randn((n, n), generator=gen)) for z in layers]
        top = max(float(h.max()) for h, _ in fields)
        low = min(float(h.min()) for h, _ in fields)
        k0 = math.floor(low / c.slab_A)
        nslab = int(math.ceil(top / c.slab_A)) - k0 + 1
        stack = torch.zeros((nslab, n, n))
        for h, phase in fields:
            idx = (torch.floor(h / c.slab_A).long() - k0).clamp(0, nslab - 1)
            stack.scatter_add_(0, idx[None], phase[None])
        centres = (k0 + torch.arange(nslab) + 0.5) * c.slab_A
        ctf = calculate_ctf_2d(
            (defocus[i] + centres) * 1e-4,
            0.5 * c.astigmatism_A * 1e-4,
            c.astigmatism_angle_deg,
            c.voltage_kV,
            c.cs_mm,
            c.amplitude_contrast,
            0.0,
            px,
            (n, n),
            True,
            False,
        )
        contrast = torch.fft.irfft2((torch.fft.rfft2(stack) * ctf).sum(0), s=(n, n))
        intensity = (1.0 + 2.0 * contrast).clamp(min=0.05)
        if c.gold:
            x3 = (beads[:, 0] - 0.5) * n * px * 1.5
            y3 = (beads[:, 1] - 0.5) * n * px
            z3 = torch.where(beads[:, 2] > 0.5, 0.5, -0.5) * c.ice_thickness_A
            d_img = (x3 * math.cos(t) + z3 * math.sin(t)) / px
            r2 = (dist[None] - d_img[:, None, None]) ** 2 + (along[None] - y3[:, None, None] / px) ** 2
            disc = torch.sigmoid((50.0 / px - r2.sqrt()) * 2.0).amax(0)
            intensity = intensity * (1.0 - 0.8 * disc)
        counts = intensity * c.dose * px * px
        images.append(torch.poisson(counts, generator=gen) if c.dose > 0 else counts)
        dose_before.append(i * c.dose)
    return ForeignSeries(torch.stack(images).float(), tilts, defocus, nominal, dose_before, c)


def fit_series(s: ForeignSeries, box: int = 256, nominal: bool = True, **settings: object):  # noqa: ANN201
    """tomoforge's ``estimate_tilt_series`` (a SeriesFit) on ``s`` (the nominal defoci given as the mdoc's), box
    ``box`` px (0: the estimator's own), other ``FitSettings`` fields as keywords."""
    from tomoforge.methods.ctf.estimate import FitSettings, Optics, estimate_tilt_series

    c = s.condition
    return estimate_tilt_series(
        s.images,
        Optics(c.pixel_size_A, c.voltage_kV, c.cs_mm, c.amplitude_contrast),
        s.tilts_deg,
        c.axis_deg,
        FitSettings(box=min(box, c.size), **settings),  # type: ignore[arg-type]
        accumulated_dose=s.accumulated_dose,
        nominal_defocus_A=s.nominal_A if nominal else None,
    )


def scores(s: ForeignSeries, defocus_A: list[float], u_minus_v_A: list[float], angle_deg: list[float]) -> dict:
    """The issue's measures of fitted mean defoci, astigmatisms and angles against the truth: median |error|
    (Å) over |tilt| ≤ 40° and over all tilts, the worst tilt, the worst astigmatism magnitude error (Å) and,
    where the truth's is ≥ 500 Å, the worst angle error (°); the per-tilt errors."""
    c = s.condition
    err = [f - t for f, t in zip(defocus_A, s.defocus_A)]
    low = [abs(e) for e, a in zip(err, s.tilts_deg) if abs(a) <= 40]
    angle = [abs((a - c.astigmatism_angle_deg + 90) % 180 - 90) for a in angle_deg]

    def median(v: list[float]) -> float:
        return float(torch.tensor(v).median()) if len(v) % 2 else float(torch.tensor(v).quantile(0.5))

    return {
        "median_40_A": round(median(low), 1),
        "median_all_A": round(median([abs(e) for e in err]), 1),
        "worst_A": round(max(abs(e) for e in err), 1),
        "astigmatism_error_A": round(max(abs(a - c.astigmatism_A) for a in u_minus_v_A), 1),
        "angle_error_deg": round(max(angle), 1) if c.astigmatism_A >= 500 else None,
        "errors_A": [round(e) for e in err],
    }
