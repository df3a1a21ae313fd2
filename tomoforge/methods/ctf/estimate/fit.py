"""Fit of one tilt image: tiled spectra → strips → grid search over defocus (one batch) → local
refinement of defocus U/V, astigmatism angle (and phase shift) → fit resolution (CTFFIND-like).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from tomoforge.methods.ctf.estimate.background import running_mean
from tomoforge.methods.ctf.estimate.model import (
    FitTarget,
    Optics,
    StripSpectra,
    fit_target,
    half_window_px,
    modulation,
    ring_model,
    score_candidates,
    scores_against,
)
from tomoforge.methods.ctf.estimate.spectra import (
    PolarGrid,
    distance_from_axis_px,
    erase_high_contrast,
    group_into_strips,
    height_above_axis_A,
    tile_content_centres,
    tile_power_spectra,
)
from tomoforge.methods.ctf.settings import FitSettings
from tomoforge.methods.fourier import as_tensor


@dataclass
class CTFFit:
    """The fitted CTF of one image; ``curves`` hold the equiphase averages behind the fit resolution;
    ``score_gap``: how many SD of its score curve the fit stands above the best candidate a ring order
    away (inf: not measured); ``ambiguous``: too small a gap to trust the ring order."""

    defocus_u_A: float
    defocus_v_A: float
    astigmatism_angle_deg: float
    phase_shift_deg: float
    score: float
    fit_resolution_A: float
    curves: dict[str, list[float]] = field(default_factory=dict)
    score_gap: float = math.inf
    ambiguous: bool = False

    @property
    def defocus_A(self) -> float:
        return 0.5 * (self.defocus_u_A + self.defocus_v_A)


def strip_spectra(
    image: torch.Tensor | np.ndarray,
    optics: Optics,
    settings: FitSettings,
    tilt_angle_deg: float = 0.0,
    tilt_axis_angle_deg: float = 0.0,
    shift_xy_A: tuple[float, float] = (0.0, 0.0),
    grid: PolarGrid | None = None,
) -> StripSpectra:
    """Erase gold and outliers, tile ``image`` (y, x), group the tiles into strips parallel to the tilt
    axis and average each strip on the polar grid.

    Each strip's defocus is ΔF + its height above the axis (``height_above_axis_A``), and the box's own
    height range (half of box · px · tan β along the two box edges) smears its rings."""
    image = as_tensor(image)
    px = optics.pixel_size_A
    box = settings.box_px(px, tuple(image.shape))
    if settings.erase_threshold_sd > 0:
        image = erase_high_contrast(image, settings.erase_threshold_sd)
    power, centres = tile_power_spectra(image, box, settings.overlap)
    if settings.content_centres:
        centres = tile_content_centres(
            image, box, settings.overlap, px, settings.resolution_low_A, settings.resolution_high_A
        )
    dist = distance_from_axis_px(centres, tilt_axis_angle_deg, (shift_xy_A[0] / px, shift_xy_A[1] / px))
    if not settings.tilt_gradient:  # one spectrum of the whole image, fitted as if untilted
        dist, tilt_angle_deg = torch.zeros_like(dist), 0.0
    power, dist = group_into_strips(power, dist, strip_width_px(settings, box, px, tilt_angle_deg))
    if grid is None or grid.box != box:
        grid = PolarGrid.build(box, px, settings.n_angles, image.device)
    amplitude = grid.average(power).clamp(min=0).sqrt().to(torch.float32)
    phi = math.radians(tilt_axis_angle_deg)
    half = 0.5 * box * abs(math.tan(math.radians(tilt_angle_deg))) * px
    return StripSpectra(
        grid,
        amplitude,
        height_above_axis_A(dist, tilt_angle_deg, px).to(torch.float32),
        (half * abs(math.cos(phi)), half * abs(math.sin(phi))),
    )


def strip_width_px(settings: FitSettings, box: int, pixel_size_A: float, tilt_angle_deg: float) -> float:
    """Width (px) of the strips of a tilted image: the specimen's height changes by ``settings.strip_height_A``
    across one (w · px · tan β), at least ``settings.strip_fraction`` of the box; inf (one strip) untilted.
    Strips are the cost of a fit (every candidate is scored on each), and at low tilt the tiles' heights
    differ by less than the defocus a fit resolves."""
    slope = pixel_size_A * abs(math.tan(math.radians(tilt_angle_deg)))
    if slope * box <= 1e-6 * settings.strip_height_A:
        return math.inf
    return max(settings.strip_fraction * box, settings.strip_height_A / slope, 1.0)


def search_grid(settings: FitSettings, low_A: float, high_A: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate mean defoci (d,) Å from ``low_A`` to ``high_A`` and phase shifts (p,) rad."""
    step = settings.grid_step_A
    defocus = low_A + step * torch.arange(int(math.floor((high_A - low_A) / step + 1e-9)) + 1, dtype=torch.float32)
    if settings.find_phase_shift:
        m = (
            int(
                math.floor(
                    (settings.phase_shift_max_deg - settings.phase_shift_min_deg) / settings.phase_shift_step_deg + 1e-9
                )
            )
            + 1
        )
        phases = torch.deg2rad(
            settings.phase_shift_min_deg + settings.phase_shift_step_deg * torch.arange(m, dtype=torch.float32)
        )
    else:
        phases = torch.zeros(1)
    return defocus, phases


def landscape(
    spectra: StripSpectra,
    optics: Optics,
    settings: FitSettings,
    defocus: torch.Tensor,
    phases: torch.Tensor,
    window_defocus_A: float,
    astigmatism: tuple[float, float] = (0.0, 0.0),
) -> torch.Tensor:
    """Scores (d, p) of every (mean defocus, phase shift) pair, all in one batch, for a fixed background
    window (the ring period at ``window_defocus_A``) and astigmatism (a_x, a_y) Å."""
    t = _target(spectra, optics, settings, window_defocus_A)
    dev = t.data.device
    d, p = torch.meshgrid(defocus.to(dev), phases.to(dev), indexing="ij")
    d, p = d.reshape(-1), p.reshape(-1)
    ax, ay = torch.full_like(d, astigmatism[0]), torch.full_like(d, astigmatism[1])
    scores = score_candidates(spectra, optics, t.weights, t.data, t.half_width, d, ax, ay, p)
    return scores.reshape(len(defocus), len(phases)).cpu()


def _target(spectra: StripSpectra, optics: Optics, settings: FitSettings, window_defocus_A: float) -> FitTarget:
    """The fit target of ``spectra`` in the settings' band, background window at ``window_defocus_A`` (Å)."""
    return fit_target(
        spectra, optics, window_defocus_A, settings.resolution_low_A, settings.resolution_high_A, settings.weight_power
    )


def refine(
    spectra: StripSpectra,
    optics: Optics,
    settings: FitSettings,
    start: torch.Tensor,
    fit_astigmatism: bool = True,
    fit_phase: bool = False,
    iterations: int = 40,
    bound_A: float = 1000.0,
) -> tuple[torch.Tensor, float]:
    """LBFGS on (mean defocus, a_x, a_y, phase) from ``start`` (4,) (Å, Å, Å, rad); a_x, a_y stay fixed
    unless ``fit_astigmatism``, the phase unless ``fit_phase``. The mean defocus stays within ±
    ``bound_A`` of the start (start + bound · tanh u), so that a refinement does not jump to the next
    ring order, which the grid search has already judged. The background window is the ring period
    at the start's defocus. With only the mean defocus free, a batched 1-D search replaces LBFGS
    (``refine_mean``). Returns (parameters (4,), score)."""
    target = _target(spectra, optics, settings, float(start[0]))
    dev = target.data.device
    start = start.to(device=dev, dtype=torch.float32).detach()
    if not fit_astigmatism and not fit_phase:
        return refine_mean(spectra, optics, target, start, bound_A)
    units = torch.tensor([bound_A, 1e3, 1e3, 1.0], device=dev)
    free = torch.tensor([1.0, float(fit_astigmatism), float(fit_astigmatism), float(fit_phase)], device=dev)
    x = torch.zeros(4, device=dev, requires_grad=True)
    opt = torch.optim.LBFGS([x], lr=1, max_iter=iterations, line_search_fn="strong_wolfe")

    def params() -> torch.Tensor:
        step = x * free
        return start + torch.cat([torch.tanh(step[:1]), step[1:]]) * units

    def objective() -> torch.Tensor:
        opt.zero_grad()
        p = params()
        ax, ay = (p[1:2], p[2:3]) if fit_astigmatism else (p[1:2].detach(), p[2:3].detach())
        loss = -scores_against(spectra, optics, target, p[0:1], ax, ay, p[3:4])[0]
        loss.backward()
        return loss

    opt.step(objective)
    with torch.no_grad():
        p = params()
        final = float(scores_against(spectra, optics, target, p[0:1], p[1:2], p[2:3], p[3:4])[0])
    return p.detach().cpu(), final


def refine_mean(
    spectra: StripSpectra,
    optics: Optics,
    target: FitTarget,
    start: torch.Tensor,
    bound_A: float = 1000.0,
    span_A: float = 100.0,
    step_A: float = 25.0,
) -> tuple[torch.Tensor, float]:
    """The mean defocus of ``start`` (4,) refined, the rest kept: every ``step_A`` within ± ``span_A`` scored
    in one batch, the window moved while the best is at its edge (within ± ``bound_A`` of the start), then
    the parabola through the best and its neighbours. Returns (parameters (4,), score)."""
    dev = target.data.device
    offsets = torch.arange(-span_A, span_A + step_A / 2, step_A, device=dev)
    centre = float(start[0])
    lo, hi = centre - bound_A, centre + bound_A

    def score(means: torch.Tensor) -> torch.Tensor:
        c = means.shape[0]
        return score_candidates(
            spectra,
            optics,
            target.weights,
            target.data,
            target.half_width,
            means,
            start[1].expand(c),
            start[2].expand(c),
            start[3].expand(c),
        )

    while True:
        means = (centre + offsets).clamp(lo, hi)
        values = score(means)
        j = int(values.argmax())
        edge = (j == 0 and float(means[0]) > lo) or (j == len(means) - 1 and float(means[-1]) < hi)
        if not edge:
            break
        centre = float(means[j])
    best = float(means[j])
    if 0 < j < len(means) - 1:
        a, b, c = (float(v) for v in values[j - 1 : j + 2])
        curvature = a - 2 * b + c
        if curvature < 0:
            best += step_A * max(-1.0, min(1.0, 0.5 * (a - c) / curvature))
    final = torch.tensor([best], device=dev)
    params = torch.cat([final, start[1:]])
    return params.cpu(), float(score(final)[0])


def to_fit(spectra: StripSpectra, optics: Optics, settings: FitSettings, params: torch.Tensor, score: float) -> CTFFit:
    """CTFFit (U ≥ V, angle of U from X in (−90, 90], phase in [0, 360)) of parameters (4,)."""
    mean, ax, ay, ph = (float(v) for v in params)
    half_astig = math.hypot(ax, ay)
    angle = 0.5 * math.degrees(math.atan2(ay, ax))
    phase_deg = math.degrees(ph) % 360.0 if settings.find_phase_shift else 0.0
    res, curves = fit_resolution(spectra, optics, params, settings.resolution_low_A, settings.fit_threshold)
    return CTFFit(mean + half_astig, mean - half_astig, angle, phase_deg, score, res, curves)


def fit_image(
    image: torch.Tensor | np.ndarray,
    optics: Optics,
    settings: FitSettings | None = None,
    tilt_angle_deg: float = 0.0,
    tilt_axis_angle_deg: float = 0.0,
    *,
    defocus_range_A: tuple[float, float] | None = None,
) -> CTFFit:
    """Fit the CTF of one image on its own: the grid search over the whole range, the best grid point
    refined with astigmatism (and phase shift). A tilt series is better served by ``estimate_tilt_series``,
    which pools the tilts.

    Parameters
    ----------
    image : torch.Tensor or numpy.ndarray
        The image (y, x); a tensor's device is where the work is done.
    optics : Optics
        Pixel size (Å), voltage (kV), Cs (mm), amplitude contrast.
    settings : FitSettings, optional
        Search and fit settings (default ``FitSettings()``).
    tilt_angle_deg, tilt_axis_angle_deg : float
        The image's tilt angle and tilt axis angle (from the image Y axis), degrees.
    defocus_range_A : tuple of float, optional
        (low, high) defocus searched, Å (default the settings' range).

    Returns
    -------
    CTFFit
        Defocus U, V (Å), astigmatism angle and phase shift (degrees), score, fit resolution (Å).
    """
    settings = settings or FitSettings()
    spectra = strip_spectra(image, optics, settings, tilt_angle_deg, tilt_axis_angle_deg)
    low, high = defocus_range_A or (settings.defocus_min_A, settings.defocus_max_A)
    defocus, phases = search_grid(settings, low, high)
    scores = landscape(spectra, optics, settings, defocus, phases, 0.5 * (low + high))
    i, j = divmod(int(scores.argmax()), scores.shape[1])
    start = torch.tensor([float(defocus[i]), 0.0, 0.0, float(phases[j])])
    params, score = refine(spectra, optics, settings, start, True, settings.find_phase_shift)
    return to_fit(spectra, optics, settings, params, score)


def fit_resolution(
    spectra: StripSpectra, optics: Optics, params: torch.Tensor, resolution_low_A: float, threshold: float
) -> tuple[float, dict[str, list[float]]]:
    """Resolution (Å) up to which the rings agree with the fit, as CTFFIND 4.1 decides it.

    Every (strip, angle, radius) bin goes to the radius at which the mean defocus gives the same
    phase (an equiphase average); the correlation of data and model over ± two ring periods along
    that profile is followed outwards from the first zero and the fit stops below 0.1 once it was
    above 0.1, or below ``threshold`` once it was above ``threshold`` + 0.16 (Nyquist if never)."""
    g, lam, cs = spectra.grid, optics.wavelength_A, optics.cs_mm * 1e7
    dev = spectra.amplitude.device
    mean, ax, ay, ph = params.to(device=dev, dtype=torch.float32).reshape(4, 1)
    h = half_window_px(g, optics, float(mean))
    data = modulation(spectra.amplitude, h)
    q = ring_model(spectra, optics, mean, ax, ay, ph)
    model = (q - running_mean(q, h))[0]
    theta, k = g.theta[None, :, None], g.k_A[None, None, :]
    df = (mean + ax * torch.cos(2 * theta) + ay * torch.sin(2 * theta)).double() + spectra.offset_A.double()[
        :, None, None
    ]
    chi = math.pi * lam * df * k**2 - 0.5 * math.pi * cs * lam**3 * k**4
    a2, b1 = 0.5 * math.pi * cs * lam**3, math.pi * lam * float(mean)
    disc = (b1 * b1 - 4 * a2 * chi).clamp(min=0)
    k_eq = torch.sqrt(((b1 - disc.sqrt()) / (2 * a2)).clamp(min=0)) if a2 > 0 else torch.sqrt(chi.clamp(min=0) / b1)
    n = g.n_radii
    bins = torch.round(k_eq * g.box * g.pixel_size_A).long().clamp(max=n - 1).reshape(-1)
    w = g.counts[None].expand(data.shape).reshape(-1).double()
    total = torch.zeros(n, dtype=torch.float64, device=dev).index_add_(0, bins, w).clamp(min=1e-12)
    d1 = torch.zeros(n, dtype=torch.float64, device=dev).index_add_(0, bins, w * data.reshape(-1).double()) / total
    m1 = torch.zeros(n, dtype=torch.float64, device=dev).index_add_(0, bins, w * model.reshape(-1).double()) / total
    hw = 2 * h.double()
    cc = running_mean(d1 * m1, hw) / (running_mean(d1 * d1, hw) * running_mean(m1 * m1, hw)).sqrt().clamp(min=1e-20)
    k1, cc, d1, m1, total = g.k_A.double().cpu(), cc.cpu(), d1.cpu(), m1.cpu(), total.cpu()
    start = max(1 / resolution_low_A, 1 / math.sqrt(lam * max(float(mean), 1.0)))
    idx = torch.nonzero((k1 >= start) & (total > 1e-9) & (k1 <= 0.98 * 0.5 / g.pixel_size_A)).reshape(-1).tolist()
    last = idx[-1] if idx else n - 1
    above_low = above_high = 0
    for j, i in enumerate(idx):
        c = float(cc[i])
        if (above_low > 3 and c < 0.1) or (above_high > 3 and c < threshold):
            last = idx[max(j - 1, 0)]
            break
        above_low += c > 0.1
        above_high += c > threshold + 0.16
    curves = {"k_A": k1.tolist(), "data": d1.tolist(), "model": m1.tolist(), "fit_cc": cc.tolist()}
    return 1 / float(k1[last]), curves
