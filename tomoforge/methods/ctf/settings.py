"""Settings and microscope constants of the CTF methods: plain dataclasses, free of torch, so that a
protocol module can take its parameters' defaults from them (one place for every default) and a task's
job can carry them to a worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Method = Literal["phase-flip", "wiener"]


@dataclass(frozen=True)
class Optics:
    """Microscope constants of a CTF: voltage (kV), spherical aberration Cs (mm), amplitude contrast
    (fraction)."""

    voltage_kV: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.07


@dataclass
class FitSettings:
    """Search and fit parameters of the CTF estimation (box 1536 Å, 50–5 Å, 3000–80 000 Å by 500 Å,
    searched at ≤ 100 Å).

    ``box_A`` (Å) of the tiled spectra (the even number of pixels nearest it, at most the image): the
    box must span several Thon-ring periods' worth of real space whatever the pixel size (a ring period
    is 1 / (λ Δf k) in k, so a box of B Å resolves rings up to k ≈ B / (3 λ Δf)); ``box`` (px) overrides
    it when > 0; tiles overlapping by ``overlap`` (fraction); fit band
    ``resolution_low_A``–``resolution_high_A``; defocus search ``defocus_min_A``–``defocus_max_A`` by
    ``defocus_step_A`` (``grid_step_A`` is the step actually searched: finer when the rings are dense, a
    step of 500 Å can straddle a narrow peak); phase shift search (degrees) with ``find_phase_shift``;
    ``n_angles`` angular bins of the polar grid; strips as wide as the specimen's height changes by
    ``strip_height_A`` across them (one strip at 0°), at least ``strip_fraction`` of a box;
    ``fit_threshold``: the correlation below which the fit resolution stops; ``erase_threshold_sd``:
    erase gold beads and outliers beyond this many SDs (0: off); ``window_A``: half-width of the
    per-tilt search around the series consensus (or the nominal defocus); ``weight_power``: frequencies
    weighted by k to this power; ``content_centres``: a tile's defocus taken where its content is;
    ``prior_width_A``: SD (Å) of the nominal (mdoc) defocus as a prior on the series consensus;
    ``ambiguous_gap``: a fit whose score gap to the next candidate (standardised, see ``series.py``)
    is below this is ambiguous; ``leave_window_gap``: a tilt whose own best candidate outside ± ``window_A``
    (within ± 3 ``window_A``) stands this many SD above its best within takes it (a defocus step between tilts
    larger than the window); ``tilt_gradient``: model the defocus gradient across a tilted image (strips
    at their heights above the axis, each box's own height range; False: one spectrum of the whole image
    fitted as if untilted, CTFFIND's model, kept to measure what the gradient model gains)."""

    box: int = 0
    box_A: float = 1536.0
    overlap: float = 0.5
    resolution_low_A: float = 50.0
    resolution_high_A: float = 5.0
    defocus_min_A: float = 3_000.0
    defocus_max_A: float = 80_000.0
    defocus_step_A: float = 500.0
    find_phase_shift: bool = False
    phase_shift_min_deg: float = 0.0
    phase_shift_max_deg: float = 180.0
    phase_shift_step_deg: float = 10.0
    n_angles: int = 36
    strip_fraction: float = 0.125
    strip_height_A: float = 60.0
    fit_threshold: float = 0.5
    erase_threshold_sd: float = 6.0
    window_A: float = 2000.0
    weight_power: float = 2.0
    content_centres: bool = True
    prior_width_A: float = 5000.0
    ambiguous_gap: float = 1.0
    leave_window_gap: float = 2.0
    tilt_gradient: bool = True

    @property
    def grid_step_A(self) -> float:
        return min(self.defocus_step_A, 100.0)

    def box_px(self, pixel_size_A: float, image_shape: tuple[int, ...]) -> int:
        """The box (px) for images of ``image_shape`` (…, y, x) at ``pixel_size_A``: ``box`` if set, else
        the even number of pixels nearest ``box_A`` (at least 64); at most the image's (even) size."""
        box = self.box if self.box > 0 else max(64, 2 * int(round(self.box_A / pixel_size_A / 2)))
        return min(box, *[s - s % 2 for s in image_shape[-2:]])


@dataclass(frozen=True)
class CorrectionSettings:
    """How to correct the CTF: ``method``; strips (Å of defocus, None = ``auto_tolerance_A``; px, 0 = no
    width limit); Wiener SNR(k) = ``wiener_snr`` · exp(−``wiener_b_factor_A2`` · k² / 2); padding (px;
    None = the CTF's delocalisation); ``handedness`` (−1: data of the other hand); ``chunk``: strips
    filtered at once."""

    method: Method = "phase-flip"
    defocus_tolerance_A: float | None = None
    strip_width_px: int = 0
    wiener_snr: float = 1.0
    wiener_b_factor_A2: float = 0.0
    pad_px: int | None = None
    handedness: Literal[1, -1] = 1
    chunk: int = 8


__all__ = ["CorrectionSettings", "FitSettings", "Method", "Optics"]
