"""CTF of a whole tilt series: per-tilt fits that share what a tilt series shares.

1. Spectra of every tilt (strips parallel to the axis, each at its own height).
2. A grid search over the whole defocus range for every tilt, one batch each.
3. The series consensus: the defocus where the standardised score curves of the least-exposed
   tilts (the first third by accumulated dose, else the least tilted) add up highest. Late tilts
   lose their high-frequency rings to radiation damage and tilting, and a specimen's own structure
   factor (e.g. apoferritin shells) mimics broad low-frequency rings, so a tilt fitted alone can jump
   by one ring order; the consensus fixes the order.
4. Every tilt: the best grid point within ± ``window_A`` of the consensus (or of its nominal defocus
   from the mdoc, when asked), refined locally (LBFGS).
5. Astigmatism: one for the series (default; the objective's astigmatism does not change while a
   series is recorded, and one image rarely has the signal to measure 500 Å), fitted jointly on the
   least-exposed tilts, or one per tilt.
6. The defocus gradient across each tilted image, compared with the one the geometry predicts
   (``hand.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from tomoforge.methods.ctf.estimate.fit import (
    CTFFit,
    FitSettings,
    landscape,
    refine,
    search_grid,
    strip_spectra,
    to_fit,
)
from tomoforge.methods.ctf.estimate.hand import HandCheck, check_hand
from tomoforge.methods.ctf.estimate.model import (
    Optics,
    StripSpectra,
    fit_target,
    scores_against,
)
from tomoforge.methods.ctf.estimate.spectra import PolarGrid

Progress = Callable[[str, int, int], None]


@dataclass
class SeriesFit:
    """Per-tilt fits (input order), the consensus defocus (Å), the hand check and the strip spectra."""

    fits: list[CTFFit]
    consensus_A: float
    hand: HandCheck
    spectra: list[StripSpectra]


def reference_tilts(
    tilt_angles_deg: Sequence[float], accumulated_dose: Sequence[float] | None, fraction: float = 1 / 3
) -> list[int]:
    """Indices of the least-exposed third of the tilts (by accumulated dose, else by |tilt|), at least 3."""
    n = len(tilt_angles_deg)
    key = list(accumulated_dose) if accumulated_dose is not None else [abs(a) for a in tilt_angles_deg]
    order = sorted(range(n), key=lambda i: (key[i], abs(tilt_angles_deg[i])))
    return sorted(order[: min(n, max(3, int(math.ceil(fraction * n))))])


def consensus_defocus(scores: torch.Tensor, defocus: torch.Tensor, reference: list[int]) -> float:
    """Defocus (Å) maximising the sum of the standardised score curves (n, d) of the reference tilts."""
    s = scores[reference]
    z = (s - s.mean(dim=1, keepdim=True)) / s.std(dim=1, keepdim=True).clamp(min=1e-12)
    return float(defocus[z.sum(0).argmax()])


def _series_astigmatism(
    spectra: list[StripSpectra], optics: Optics, settings: FitSettings, starts: list[torch.Tensor], iterations: int = 60
) -> tuple[float, float]:
    """(a_x, a_y) Å maximising the summed scores of the given tilts, their mean defoci free too (within
    ± 1000 Å of the starts, as in ``refine``)."""
    targets = [
        fit_target(
            sp, optics, float(st[0]), settings.resolution_low_A, settings.resolution_high_A, settings.weight_power
        )
        for sp, st in zip(spectra, starts)
    ]
    dev = spectra[0].amplitude.device
    means = torch.stack([st[0] for st in starts]).float().to(dev)
    phases = torch.stack([st[3] for st in starts]).float().to(dev)
    x = torch.zeros(len(starts) + 2, device=dev, requires_grad=True)
    opt = torch.optim.LBFGS([x], lr=1, max_iter=iterations, line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        opt.zero_grad()
        ax, ay = x[-2:-1] * 1e3, x[-1:] * 1e3
        total = torch.zeros((), device=dev)
        for i, (sp, target) in enumerate(zip(spectra, targets)):
            mean = means[i : i + 1] + 1e3 * torch.tanh(x[i : i + 1])
            total = total - scores_against(sp, optics, target, mean, ax, ay, phases[i : i + 1])[0]
        total.backward()
        return total

    opt.step(objective)
    return float(x[-2].detach()) * 1e3, float(x[-1].detach()) * 1e3


def estimate_tilt_series(
    images: torch.Tensor | np.ndarray,
    optics: Optics,
    tilt_angles_deg: Sequence[float],
    tilt_axis_angle_deg: float | Sequence[float],
    settings: FitSettings | None = None,
    *,
    accumulated_dose: Sequence[float] | None = None,
    nominal_defocus_A: Sequence[float | None] | None = None,
    use_nominal: bool = False,
    astigmatism: Literal["series", "per-tilt"] = "series",
    shifts_xy_A: Sequence[tuple[float, float]] | None = None,
    excluded: Sequence[bool] | None = None,
    progress: Progress | None = None,
) -> SeriesFit:
    """Fit the CTF of every image of a tilt series (see the module docstring).

    Parameters
    ----------
    images : torch.Tensor or numpy.ndarray
        The tilt images (n, y, x), raw (not dose-weighted); a tensor's device is where the work is done.
    optics : Optics
        Pixel size (Å), voltage (kV), Cs (mm), amplitude contrast.
    tilt_angles_deg : sequence of float
        Tilt angle of each image, degrees.
    tilt_axis_angle_deg : float or sequence of float
        Tilt axis angle from the image Y axis, degrees: one for all, or one per image (the refined ZRot).
    settings : FitSettings, optional
        Search and fit settings (default ``FitSettings()``).
    accumulated_dose : sequence of float, optional
        Dose before each image, e/Å²: the least-exposed third makes the consensus (else the least tilted).
    nominal_defocus_A : sequence of float or None, optional
        Each image's nominal defocus, Å; with ``use_nominal``, searched ± ``settings.window_A`` around it
        instead of around the consensus.
    use_nominal : bool
        Search around the nominal defoci.
    astigmatism : {"series", "per-tilt"}
        One astigmatism for the series (fitted on the reference tilts), or one per image.
    shifts_xy_A : sequence of (float, float), optional
        Where the tomogram centre projects in each image (x, y), Å from the image centre (default 0, 0).
    excluded : sequence of bool, optional
        Images fitted but left out of the consensus and the series astigmatism.
    progress : callable, optional
        Called as ``progress(stage, i, n)`` after each image of each stage.

    Returns
    -------
    SeriesFit
        Per-image fits (input order), the consensus defocus (Å), the hand check and the strip spectra.
    """
    settings = settings or FitSettings()
    n = len(tilt_angles_deg)
    if len(images) != n:
        raise ValueError(f"{len(images)} images but {n} tilt angles")
    axes = (
        [float(tilt_axis_angle_deg)] * n
        if isinstance(tilt_axis_angle_deg, (int, float))
        else [float(a) for a in tilt_axis_angle_deg]
    )
    shifts = list(shifts_xy_A) if shifts_xy_A is not None else [(0.0, 0.0)] * n
    report = progress or (lambda stage, i, total: None)
    grid: PolarGrid | None = None
    spectra = []
    for i in range(n):
        sp = strip_spectra(images[i], optics, settings, tilt_angles_deg[i], axes[i], shifts[i], grid)
        grid = sp.grid
        spectra.append(sp)
        report("spectra", i, n)
    nominal = list(nominal_defocus_A) if nominal_defocus_A is not None else [None] * n
    if use_nominal and any(v is None for v in nominal):
        missing = [i for i, v in enumerate(nominal) if v is None]
        raise ValueError(f"use_nominal: images {missing} have no nominal defocus")
    keep = [i for i in range(n) if not (excluded and excluded[i])] or list(range(n))
    chosen = reference_tilts(
        [tilt_angles_deg[i] for i in keep], None if accumulated_dose is None else [accumulated_dose[i] for i in keep]
    )
    reference = [keep[i] for i in chosen]
    low, high = settings.defocus_min_A, settings.defocus_max_A
    starts: list[torch.Tensor] = []
    consensus = float("nan")
    if use_nominal:
        given = [float(v) for v in nominal if v is not None]  # every one (checked above)
        for i in range(n):
            lo = max(low, given[i] - settings.window_A)
            hi = min(high, given[i] + settings.window_A)
            starts.append(_best_in(spectra[i], optics, settings, lo, max(hi, lo), 0.5 * (lo + hi)))
            report("search", i, n)
        consensus = sum(given) / n
    else:
        defocus, phases = search_grid(settings, low, high)
        tables = []
        for i in range(n):
            tables.append(landscape(spectra[i], optics, settings, defocus, phases, 0.5 * (low + high)))
            report("search", i, n)
        consensus = consensus_defocus(torch.stack([t.amax(dim=1) for t in tables]), defocus, reference)
        near = (defocus - consensus).abs() <= settings.window_A
        for t in tables:
            sub = t[near]
            i, j = divmod(int(sub.argmax()), sub.shape[1])
            starts.append(torch.tensor([float(defocus[near][i]), 0.0, 0.0, float(phases[j])]))
    starts = [refine(sp, optics, settings, st, False, settings.find_phase_shift)[0] for sp, st in zip(spectra, starts)]
    if astigmatism == "series":
        ax, ay = _series_astigmatism([spectra[i] for i in reference], optics, settings, [starts[i] for i in reference])
        starts = [torch.tensor([float(st[0]), ax, ay, float(st[3])]) for st in starts]
    fits = []
    for i, (sp, st) in enumerate(zip(spectra, starts)):
        params, score = refine(sp, optics, settings, st, astigmatism == "per-tilt", settings.find_phase_shift)
        fits.append(to_fit(sp, optics, settings, params, score))
        report("refine", i, n)
    hand = check_hand(spectra, optics, settings, fits, tilt_angles_deg)
    return SeriesFit(fits, consensus, hand, spectra)


def _best_in(
    spectra: StripSpectra, optics: Optics, settings: FitSettings, low: float, high: float, window_defocus_A: float
) -> torch.Tensor:
    """Start parameters (4,) at the best grid point between ``low`` and ``high`` Å."""
    defocus, phases = search_grid(settings, low, high)
    scores = landscape(spectra, optics, settings, defocus, phases, window_defocus_A)
    i, j = divmod(int(scores.argmax()), scores.shape[1])
    return torch.tensor([float(defocus[i]), 0.0, 0.0, float(phases[j])])
