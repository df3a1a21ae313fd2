"""Is the defocus gradient across the tilted images the one the geometry predicts?

With the tilt axis at φ and the tilt angle β, a strip at distance d from the axis is d · px · tan β
lower (CONVENTIONS: x_image = Rz(φ) Ry(β) x; heights towards the source add to the defocus). A tilt
axis given 180° off, or tilt angles of the wrong sign, flips that gradient (and mirrors the
tomogram). For every tilt with |β| ≥ ``min_tilt_deg``, the fitted CTF is re-scored with the strips'
height offsets scaled by s (the mean defocus re-optimised for each s): s ≈ +1 is the geometry,
s ≈ −1 the opposite hand. The series verdict is a sign test over the tilts of score(+1) − score(−1):
z = (#positive − #negative) / √n, 'opposite' below −3, 'consistent' above 3.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from tomoforge.methods.ctf.estimate.model import (
    Optics,
    StripSpectra,
    fit_target,
    score_candidates,
)
from tomoforge.methods.ctf.settings import FitSettings

if TYPE_CHECKING:
    from tomoforge.methods.ctf.estimate.fit import CTFFit

OPPOSITE_MESSAGE = (
    "defocus gradient opposite to the geometry: tilt axis 180° off or tilt angles of the wrong "
    "sign (the tomogram would be mirrored)"
)


@dataclass
class HandCheck:
    """Per tilt: the measured gradient scale (1 = as predicted, −1 = opposite; None when too flat to
    tell) and the score preference for the geometry's hand; for the series: z of the preference and
    the verdict ('consistent', 'opposite' or 'inconclusive'). Both hands are scored alike (the mean
    defocus searched over the same window for each), so the fit's own hand has no head start."""

    measured_scale: list[float | None] = field(default_factory=list)
    preference: list[float | None] = field(default_factory=list)
    z: float = 0.0
    verdict: str = "inconclusive"

    @property
    def flagged(self) -> bool:
        return self.verdict == "opposite"

    @property
    def message(self) -> str:
        if self.verdict == "opposite":
            return OPPOSITE_MESSAGE + f" (z = {self.z:.1f})"
        if self.verdict == "consistent":
            return f"defocus gradient agrees with the geometry (z = {self.z:.1f})"
        return (
            f"defocus gradient inconclusive (z = {self.z:.1f}): too few tilted images, or their rings too weak to tell"
        )


def gradient_scores(
    spectra: StripSpectra,
    optics: Optics,
    fit_params: torch.Tensor,
    scales: torch.Tensor,
    resolution_low_A: float,
    resolution_high_A: float,
    span_A: float = 1000.0,
    step_A: float = 50.0,
) -> torch.Tensor:
    """Best score (s,) for each gradient scale, the mean defocus searched within ± ``span_A`` of the
    fitted one, the phase kept, without astigmatism (fitted under one hand, it would favour it)."""
    mean, _, _, ph = (float(v) for v in fit_params)
    ax = ay = 0.0
    dev = spectra.amplitude.device
    offsets = torch.arange(-span_A, span_A + step_A / 2, step_A, device=dev)
    s, o = torch.meshgrid(scales.float().to(dev), offsets, indexing="ij")
    s, o = s.reshape(-1), o.reshape(-1)
    t = fit_target(spectra, optics, mean, resolution_low_A, resolution_high_A)
    c = s.shape[0]
    scores = score_candidates(
        spectra,
        optics,
        t.weights,
        t.data,
        t.half_width,
        mean + o,
        torch.full((c,), ax, device=dev),
        torch.full((c,), ay, device=dev),
        torch.full((c,), ph, device=dev),
        s,
    )
    return scores.reshape(len(scales), len(offsets)).amax(dim=1).cpu()


def check_hand(
    spectra: list[StripSpectra],
    optics: Optics,
    settings: FitSettings,
    fits: Sequence[CTFFit],
    tilt_angles_deg: Sequence[float],
    min_tilt_deg: float = 15.0,
    z_threshold: float = 3.0,
) -> HandCheck:
    """HandCheck of a series from its strip spectra and fits (``settings``: FitSettings, for the band)."""
    scales = torch.linspace(-1.5, 1.5, 7)
    plus, minus = int(torch.argmin((scales - 1).abs())), int(torch.argmin((scales + 1).abs()))
    check = HandCheck()
    prefs = []
    for sp, fit, beta in zip(spectra, fits, tilt_angles_deg):
        if abs(beta) < min_tilt_deg or len(sp.offset_A) < 2:
            check.measured_scale.append(None)
            check.preference.append(None)
            continue
        mean = fit.defocus_A
        half = 0.5 * (fit.defocus_u_A - fit.defocus_v_A)
        angle = math.radians(2 * fit.astigmatism_angle_deg)
        params = torch.tensor([mean, half * math.cos(angle), half * math.sin(angle), math.radians(fit.phase_shift_deg)])
        best = gradient_scores(sp, optics, params, scales, settings.resolution_low_A, settings.resolution_high_A)
        pref = float(best[plus] - best[minus])
        check.measured_scale.append(float(scales[int(best.argmax())]))
        check.preference.append(pref)
        prefs.append(pref)
    if len(prefs) >= 3:  # a sign test: robust to the few tilts whose scores dominate
        check.z = (sum(p > 0 for p in prefs) - sum(p < 0 for p in prefs)) / math.sqrt(len(prefs))
        check.verdict = (
            "opposite" if check.z < -z_threshold else "consistent" if check.z > z_threshold else "inconclusive"
        )
    return check
