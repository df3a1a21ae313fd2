"""CTF of a whole tilt series: per-tilt fits that share what a tilt series shares.

1. Spectra of every tilt (strips parallel to the axis, each at its own height).
2. The global search: a grid over the whole defocus range (default 0.3–8 µm) for the least-exposed
   tilts (the first third by accumulated dose, else the least tilted), one batch each.
3. The series consensus: the defocus where their standardised score curves add up highest, minus a
   Gaussian prior (SD ``prior_width_A``) around the mean nominal (mdoc) defocus where one is known. Late tilts
   lose their high-frequency rings to radiation damage and tilting, and a specimen's own structure
   factor (e.g. apoferritin shells) mimics broad low-frequency rings, so a tilt fitted alone can jump
   by one ring order; the consensus fixes the order. Its score gap (SD) over the best candidate at
   least a ring order away (``score_gap``) says whether the series has rings: below
   ``ambiguous_gap`` (no ice texture, only a bead's form factor) a warning is given and, where every
   image has a nominal defocus, those are kept (never a confident wrong zero).
4. Every tilt: the best grid point within ± ``window_A`` of the consensus (or of its nominal defocus
   from the mdoc, when asked), searched over ± 3 ``window_A`` so that its own score gap (the
   per-tilt confidence, stored with the fit) can be measured, refined locally (LBFGS); the tilts
   whose gap is below ``ambiguous_gap`` are named in a warning. A tilt whose best candidate beyond the
   window stands more than ``leave_window_gap`` SD above its pick within it (a defocus step between
   tilts larger than the window) takes that candidate, named in a warning, where the series has rings.
5. Astigmatism: one for the series (default; the objective's astigmatism does not change while a
   series is recorded, and one image rarely has the signal to measure 500 Å), fitted jointly on the
   least-exposed tilts, or one per tilt.
6. The defocus gradient across each tilted image, compared with the one the geometry predicts
   (``hand.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
    TiltBatch,
    fit_target,
)
from tomoforge.methods.ctf.estimate.spectra import PolarGrid

Progress = Callable[[str, int, int], None]


@dataclass
class SeriesFit:
    """Per-tilt fits (input order), the consensus defocus (Å), the hand check, the strip spectra, the
    consensus's score gap (SD) to the next candidate and the warnings (no rings, ambiguous tilts)."""

    fits: list[CTFFit]
    consensus_A: float
    hand: HandCheck
    spectra: list[StripSpectra]
    score_gap: float = math.inf
    warnings: list[str] = field(default_factory=list)


def reference_tilts(
    tilt_angles_deg: Sequence[float], accumulated_dose: Sequence[float] | None, fraction: float = 1 / 3
) -> list[int]:
    """Indices of the least-exposed third of the tilts (by accumulated dose, else by |tilt|), at least 3."""
    n = len(tilt_angles_deg)
    key = list(accumulated_dose) if accumulated_dose is not None else [abs(a) for a in tilt_angles_deg]
    order = sorted(range(n), key=lambda i: (key[i], abs(tilt_angles_deg[i])))
    return sorted(order[: min(n, max(3, int(math.ceil(fraction * n))))])


def _standardised(scores: torch.Tensor) -> torch.Tensor:
    """Score curves (..., d) minus their mean, over their SD along the last axis."""
    return (scores - scores.mean(dim=-1, keepdim=True)) / scores.std(dim=-1, keepdim=True).clamp(min=1e-12)


def consensus_curve(
    scores: torch.Tensor, defocus: torch.Tensor, prior_A: float | None, settings: FitSettings
) -> torch.Tensor:
    """The series' score (d,) of each defocus: the mean of the standardised score curves (n, d) of the
    reference tilts, minus ½ ((Δf − prior) / ``settings.prior_width_A``)² where a nominal defocus is known."""
    curve = _standardised(scores).mean(0)
    if prior_A is not None:
        curve = curve - 0.5 * ((defocus - prior_A) / settings.prior_width_A) ** 2
    return curve


def score_gap(curve: torch.Tensor, defocus: torch.Tensor, best: int, reach_A: float = 300.0) -> float:
    """How far (in the curve's units) the best candidate ``best`` of ``curve`` (d,) over ``defocus`` (d,)
    stands above the next one: the highest other local maximum (the highest point within ± ``reach_A``),
    off the best one's own hump (the points from which the curve rises all the way to the best) and at
    least 2 ``reach_A`` from it (a wiggle on the hump is not a candidate); a
    neighbouring ring order or a bead's form factor makes one. inf if there is none."""
    step = float(defocus[1] - defocus[0]) if len(defocus) > 1 else 1.0
    m = max(1, int(round(reach_A / step)))
    peak = torch.nn.functional.max_pool1d(curve[None, None].float(), 2 * m + 1, 1, m, ceil_mode=False)[0, 0]
    rising = curve[1:] >= curve[:-1]  # rising[i]: curve[i + 1] >= curve[i]
    left, right = best, best
    while left > 0 and bool(rising[left - 1]):
        left -= 1
    while right < len(curve) - 1 and not bool(rising[right]):
        right += 1
    others = (curve >= peak) & (curve > -math.inf) & ((defocus - defocus[best]).abs() >= 2 * reach_A)
    others[left : right + 1] = False
    return float(curve[best] - curve[others].max()) if bool(others.any()) else math.inf


def global_landscape(
    spectra: StripSpectra, optics: Optics, settings: FitSettings, defocus: torch.Tensor, phases: torch.Tensor
) -> torch.Tensor:
    """Scores (d, p) over a wide defocus range, in bands of a factor 1.5 each scored with the background
    window of its own (geometric) middle: one window for 0.3–8 µm would be too wide for the dense rings
    of a large defocus or too narrow for the broad ones of a small defocus."""
    out = torch.empty(len(defocus), len(phases))
    lo = float(defocus[0])
    while lo <= float(defocus[-1]):
        band = (defocus >= lo) & (defocus < 1.5 * lo)
        if bool(band.any()):
            out[band] = landscape(spectra, optics, settings, defocus[band], phases, lo * math.sqrt(1.5))
        lo *= 1.5
    return out


def _series_astigmatism(
    spectra: list[StripSpectra], optics: Optics, settings: FitSettings, starts: list[torch.Tensor], iterations: int = 60
) -> tuple[float, float]:
    """(a_x, a_y) Å maximising the summed scores of the given tilts, their mean defoci free too (within
    ± 1000 Å of the starts, as in ``refine``); all tilts in one batch (``TiltBatch``)."""
    targets = [
        fit_target(
            sp, optics, float(st[0]), settings.resolution_low_A, settings.resolution_high_A, settings.weight_power
        )
        for sp, st in zip(spectra, starts)
    ]
    batch = TiltBatch.of(spectra, targets)
    dev = batch.amplitude.device
    means = torch.stack([st[0] for st in starts]).float().to(dev)
    phases = torch.stack([st[3] for st in starts]).float().to(dev)
    x = torch.zeros(len(starts) + 2, device=dev, requires_grad=True)
    opt = torch.optim.LBFGS([x], lr=1, max_iter=iterations, line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        opt.zero_grad()
        mean = means + 1e3 * torch.tanh(x[:-2])
        total = -batch.scores(optics, mean, x[-2] * 1e3, x[-1] * 1e3, phases).sum()
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
    given = [float(v) for v in nominal if v is not None]
    prior = sum(given) / len(given) if given else None
    defocus, phases = search_grid(settings, low, high)
    tables = {}
    for k, i in enumerate(reference):  # the global search: the reference tilts over the whole range
        tables[i] = global_landscape(spectra[i], optics, settings, defocus, phases)
        report("search", k, n)
    curve = consensus_curve(torch.stack([tables[i].amax(dim=1) for i in reference]), defocus, prior, settings)
    best = int(curve.argmax())
    consensus, series_gap = float(defocus[best]), score_gap(curve, defocus, best)

    picked: dict[tuple[int, float], tuple[torch.Tensor, float]] = {}
    outside: dict[tuple[int, float], tuple[torch.Tensor, float]] = {}  # (tilt, centre): its rings beyond the window

    def pick(i: int, centre: float) -> tuple[torch.Tensor, float]:
        """Tilt i's start (4,) within ± window_A of ``centre`` and its score gap (see the module docstring)."""
        if (i, centre) not in picked:
            picked[i, centre] = search(i, centre)
        return picked[i, centre]

    def search(i: int, centre: float) -> tuple[torch.Tensor, float]:
        lo, hi = max(low, centre - 3 * settings.window_A), min(high, centre + 3 * settings.window_A)
        local, ph = search_grid(settings, lo, max(hi, lo))
        table = landscape(spectra[i], optics, settings, local, ph, centre)
        # the tilt's standardised score curve, with a prior of SD window_A / 2 around the centre: a tilt whose
        # own rings are ambiguous stays with the series rather than jump ring orders
        # (the gap, the tilt's confidence, is the data's alone)
        data = _standardised(table.amax(dim=1))
        z = data - 0.5 * ((local - centre) / (0.5 * settings.window_A)) ** 2
        z = torch.where((local - centre).abs() <= settings.window_A, z, torch.full_like(z, -math.inf))
        j = int(z.argmax())
        gap = score_gap(data, local, j)
        if gap < -settings.leave_window_gap:  # clearly better beyond the window: a defocus step the window missed
            k = int(data.argmax())
            outside[i, centre] = (
                torch.tensor([float(local[k]), 0.0, 0.0, float(ph[int(table[k].argmax())])]),
                score_gap(data, local, k),
            )
        return torch.tensor([float(local[j]), 0.0, 0.0, float(ph[int(table[j].argmax())])]), gap

    if use_nominal and len(given) == n:
        centres = [float(v) for v in given]
    else:  # the reference tilts' own picks around the consensus peak centre the others
        centres = [float(np.median([float(pick(i, consensus)[0][0]) for i in reference]))] * n
    starts: list[torch.Tensor] = []
    gaps: list[float] = []
    for i in range(n):
        start, gap = pick(i, centres[i])
        starts.append(start)
        gaps.append(gap)
        report("search", i, n)
    warnings: list[str] = []
    tilt_gap = float(np.median([g for g in gaps if math.isfinite(g)] or [math.inf]))
    no_rings = series_gap < settings.ambiguous_gap and tilt_gap < settings.ambiguous_gap
    if no_rings:
        warnings.append(
            f"no clear Thon rings: the best defocus {consensus:.0f} Å is {series_gap:.2f} SD above the next "
            f"candidate and the tilts' median gap is {tilt_gap:.2f} SD (< {settings.ambiguous_gap}); "
            + ("the nominal (mdoc) defoci are kept" if len(given) == n else "the fit is unreliable")
        )
    stepped = [i for i in range(n) if (i, centres[i]) in outside] if not no_rings else []
    for i in stepped:  # where the series has rings, a tilt's own clear rings beyond the window win
        starts[i], gaps[i] = outside[i, centres[i]]
    starts = [refine(sp, optics, settings, st, False, settings.find_phase_shift)[0] for sp, st in zip(spectra, starts)]
    if astigmatism == "series":
        ax, ay = _series_astigmatism([spectra[i] for i in reference], optics, settings, [starts[i] for i in reference])
        starts = [torch.tensor([float(st[0]), ax, ay, float(st[3])]) for st in starts]
    fits = []
    for i, (sp, st) in enumerate(zip(spectra, starts)):
        if no_rings and len(given) == n:  # the prior, not a confident wrong zero
            params = torch.tensor([given[i], 0.0, 0.0, 0.0])
            score = float(landscape(sp, optics, settings, params[:1], params[3:], given[i])[0, 0])
        else:
            params, score = refine(sp, optics, settings, st, astigmatism == "per-tilt", settings.find_phase_shift)
        fit = to_fit(sp, optics, settings, params, score)
        fit.score_gap, fit.ambiguous = gaps[i], no_rings or gaps[i] < settings.ambiguous_gap
        fits.append(fit)
        report("refine", i, n)
    if stepped:
        warnings.append(
            f"defocus step: images {', '.join(f'{i} ({tilt_angles_deg[i]:+.1f}°)' for i in stepped)} fitted beyond "
            f"± {settings.window_A:.0f} Å of the series ({', '.join(f'{fits[i].defocus_A:.0f}' for i in stepped)} Å "
            f"against {centres[stepped[0]]:.0f} Å), where their rings stand > {settings.leave_window_gap} SD clearer"
        )
    unsure = [i for i, f in enumerate(fits) if f.ambiguous and not (excluded and excluded[i])]
    if unsure and not no_rings:
        warnings.append(
            f"ambiguous fit (score gap to the next candidate < {settings.ambiguous_gap} SD) at images "
            + ", ".join(f"{i} ({tilt_angles_deg[i]:+.1f}°)" for i in unsure)
        )
    hand = check_hand(spectra, optics, settings, fits, tilt_angles_deg)
    return SeriesFit(fits, consensus, hand, spectra, series_gap, warnings)
