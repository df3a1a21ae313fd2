"""Gold-bead detection and tracking through a tilt series (IMOD autofidseed/beadtrack, simplified).

Detection: a matched filter (the projection of a sphere of the bead diameter, band-passed like the
image), scored in robust standard deviations of the filtered image; peaks = local maxima above a
threshold, refined to sub-pixel by a parabola. Tracking: beads are seeded on the reference view
(lowest tilt) and followed outwards in both directions; in the tilt-axis frame a bead's position
across the axis is x·cos β + z·sin β (fitted per bead to its recent views, so its height is
learnt while tracking) and along the axis it stays put. Each view's candidates are matched to the
predictions after removing the median offset (which absorbs coarse-alignment errors).

Positions are (x, y) pixels from the image centre (index n // 2); gaps are NaN.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike
from scipy.ndimage import maximum_filter

from tomoforge.methods.align.filters import bandpass, centred_coordinates, rotate_xy, subpixel_peaks
from tomoforge.methods.fourier import as_tensor


def bead_template(diameter_px: float, shape: tuple[int, int]) -> torch.Tensor:
    """Projected thickness of a sphere (pixels) centred at index n // 2 of ``shape`` (y, x)."""
    yy, xx = centred_coordinates(shape)
    r = diameter_px / 2
    rho2 = yy.astype(float) ** 2 + xx.astype(float) ** 2
    return torch.as_tensor(np.sqrt(np.clip(r * r - rho2, 0, None)), dtype=torch.float32)


def _filtered(images: ArrayLike | torch.Tensor, diameter_px: float, polarity: int) -> torch.Tensor:
    """(n, y, x) views band-passed for bead detection (features above 4 diameters removed, little low-pass),
    beads made bright (``polarity`` −1: dark beads)."""
    x = as_tensor(images)
    if x.ndim == 2:
        x = x[None]
    return bandpass(x, 4.0 * diameter_px, diameter_px / 6.0) * polarity


def _score(filtered: torch.Tensor, template: torch.Tensor, diameter_px: float) -> torch.Tensor:
    """Matched filter of band-passed views with a (y, x) template centred at index n // 2, robust SD units."""
    shape = tuple(filtered.shape[-2:])
    t = torch.fft.ifftshift(bandpass(template.to(filtered.dtype), 4.0 * diameter_px, diameter_px / 6.0))
    t = t / t.norm()
    score = torch.fft.irfft2(torch.fft.rfft2(filtered) * torch.conj(torch.fft.rfft2(t)), s=shape)
    flat = score.reshape(len(score), -1)
    med = flat.median(dim=1).values
    mad = (flat - med[:, None]).abs().median(dim=1).values * 1.4826
    return (score - med[:, None, None]) / torch.clamp(mad, min=1e-12)[:, None, None]


def bead_score(
    images: ArrayLike | torch.Tensor,
    diameter_px: float,
    *,
    polarity: int = -1,
    template: torch.Tensor | None = None,
) -> torch.Tensor:
    """(n, y, x) matched-filter score of beads of ``diameter_px`` (pixels) in (n, y, x) or (y, x) ``images``
    (dark beads for ``polarity`` −1), in robust SD units. ``template``: the (y, x) bead image to look for,
    centred at index n // 2 and bright (``learn_bead_template``); None: a sphere's projected thickness."""
    filtered = _filtered(images, diameter_px, polarity)
    shape = tuple(filtered.shape[-2:])
    if template is None:
        template = bead_template(diameter_px, (shape[0], shape[1]))
    return _score(filtered, template.to(filtered.device), diameter_px)


def radial_profile(
    filtered: np.ndarray, views: np.ndarray, xy: np.ndarray, radius_px: float, *, bin_px: float = 0.5
) -> np.ndarray:
    """Mean of (n, y, x) ``filtered`` views against the exact distance (bins of ``bin_px``, out to ``radius_px``)
    from the (k, 2) (x, y) points ``xy`` (pixels from the image centre) of (k,) ``views``: a bead's radial
    profile from many beads at once, sub-pixel centres without interpolation. Points nearer the border than
    ``radius_px`` must be left out by the caller."""
    r = int(np.ceil(radius_px))
    oy, ox = (a.ravel() for a in np.mgrid[-r : r + 1, -r : r + 1])
    ny, nx = filtered.shape[-2:]
    cx, cy = np.rint(xy[:, 0]).astype(int), np.rint(xy[:, 1]).astype(int)
    px_x, px_y = cx[:, None] + ox[None], cy[:, None] + oy[None]  # (k, m) pixel offsets from the centre
    dist = np.hypot(px_x - xy[:, :1], px_y - xy[:, 1:])
    values = filtered[views[:, None], px_y + ny // 2, px_x + nx // 2]
    inside = dist <= radius_px
    bins = (dist[inside] / bin_px).astype(int)
    total = np.bincount(bins, values[inside], minlength=int(radius_px / bin_px) + 1)
    count = np.bincount(bins, minlength=len(total))
    return np.asarray(total / np.maximum(count, 1))


def learn_bead_template(
    images: ArrayLike | torch.Tensor,
    diameter_px: float,
    *,
    polarity: int = -1,
    threshold_sd: float = 6.0,
    rounds: int = 2,
    per_view: int = 20,
) -> torch.Tensor:
    """(y, x) bead template learnt from the data: the radial profile of the beads found (``radial_profile``),
    out to a diameter from their centres, as an image centred at index n // 2.

    A gold bead under a CTF at a few µm defocus is not its projected thickness: it is dark out past its edge
    and ringed by Fresnel fringes (issue 16's 10 nm beads at 8 Å/px and 3 µm: dark to a radius of 8.5 px for
    6.25 px, a darker core of 3.5 px). The sphere finds them, off centre by 1.3 px SD (a third missed); the
    average of the beads found, radially symmetric so that it cannot move a centre, finds them again, better
    each round. Per round: every view scored with the current template, up to ``per_view`` of its strongest
    peaks above ``threshold_sd`` (robust SD) with no other peak within 2 diameters (a neighbour would enter
    the profile) and not nearer the border than a diameter.
    """
    filtered = _filtered(images, diameter_px, polarity)
    shape = (int(filtered.shape[-2]), int(filtered.shape[-1]))
    template = bead_template(diameter_px, shape)
    radius = float(diameter_px)
    yy, xx = centred_coordinates(shape)
    rho = np.hypot(yy.astype(float), xx.astype(float))
    filtered_np = filtered.cpu().numpy()
    for _ in range(rounds):
        score = _score(filtered, template.to(filtered.device), diameter_px).cpu().numpy()
        views, points = [], []
        for v in range(len(score)):  # per view: the peaks of one map (a few dozen)
            xy, _ = detect_beads(score[v], diameter_px, threshold_sd=threshold_sd, border_px=radius + 1)
            xy = xy[_isolated(xy, 2.0 * diameter_px)][:per_view]
            views.append(np.full(len(xy), v))
            points.append(xy)
        if sum(len(p) for p in points) < 3:
            break  # too few beads to learn from: keep the template of the round before
        profile = radial_profile(filtered_np, np.concatenate(views), np.concatenate(points), radius)
        learnt = np.interp(rho, (np.arange(len(profile)) + 0.5) * 0.5, profile) * (rho <= radius)
        template = torch.as_tensor(learnt, dtype=torch.float32)
    return template


def detect_beads(
    score: np.ndarray,
    diameter_px: float,
    *,
    threshold_sd: float = 6.0,
    max_count: int | None = None,
    border_px: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Bead positions: the peaks of one score map, strongest first.

    Parameters
    ----------
    score
        (y, x) score map (``bead_score``), robust SD units.
    diameter_px
        Bead diameter, pixels: a peak closer than this to a stronger one is dropped.
    threshold_sd
        Peaks at or below this score are not beads.
    max_count
        Keep at most this many (the strongest); None: all.
    border_px
        Peaks closer than this to the border are dropped (default: a radius rounded up, so that the whole
        bead is in the image; at least 2 px, for the sub-pixel fit. On a 64-pixel image a border of a
        diameter hid a quarter of the field, and with it half the beads of the tiny simulation).

    Returns
    -------
    positions
        (k, 2) (x, y) sub-pixel positions, pixels from the image centre (index n // 2).
    heights
        (k,) their scores.
    """
    s = np.asarray(score, dtype=np.float64)
    size = max(3, int(round(diameter_px)) | 1)
    peaks = (s == maximum_filter(s, size=size, mode="nearest")) & (s > threshold_sd)
    border = max(2, int(np.ceil(diameter_px / 2 if border_px is None else border_px)))
    peaks[:border], peaks[-border:], peaks[:, :border], peaks[:, -border:] = False, False, False, False
    iy, ix = np.nonzero(peaks)
    heights = s[iy, ix]
    order = np.argsort(-heights)[:max_count]
    yx = subpixel_peaks(s, iy[order], ix[order])
    centre = np.array([s.shape[0] // 2, s.shape[1] // 2])
    xy = (yx - centre)[:, ::-1]
    return xy, heights[order]


def _isolated(xy: np.ndarray, min_distance_px: float) -> np.ndarray:
    """Mask of points with no other point closer than ``min_distance_px``."""
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return d.min(axis=1, initial=np.inf) >= min_distance_px


def _match(pred: np.ndarray, cand: np.ndarray, radius: float) -> np.ndarray:
    """Greedy one-to-one matching: index into ``cand`` per prediction (−1: none within radius)."""
    out = -np.ones(len(pred), dtype=int)
    if len(cand) == 0 or len(pred) == 0:
        return out
    d = np.linalg.norm(pred[:, None] - cand[None], axis=-1)
    d[~np.isfinite(d)] = np.inf
    used = np.zeros(len(cand), dtype=bool)
    for flat in np.argsort(d, axis=None):
        i, j = np.unravel_index(flat, d.shape)
        if d[i, j] > radius:
            break
        if out[i] < 0 and not used[j]:
            out[i], used[j] = j, True
    return out


def _common_offset(pred: np.ndarray, cand: np.ndarray, radius: float, tolerance: float) -> np.ndarray:
    """The translation (x, y) that brings most predictions onto a candidate (a vote over all
    prediction-candidate differences within ``radius``), refined by their median; 0 if < 3 agree."""
    ok = np.all(np.isfinite(pred), axis=1)
    if ok.sum() == 0 or len(cand) == 0:
        return np.zeros(2)
    diffs = (cand[None] - pred[ok][:, None]).reshape(-1, 2)
    diffs = diffs[np.linalg.norm(diffs, axis=1) <= radius]
    if len(diffs) < 3:
        return np.zeros(2)
    votes = (np.linalg.norm(diffs[:, None] - diffs[None], axis=-1) <= tolerance).sum(axis=1)
    best = diffs[int(np.argmax(votes))]
    agree = diffs[np.linalg.norm(diffs - best, axis=1) <= tolerance]
    return np.median(agree, axis=0) if len(agree) >= 3 else np.zeros(2)


def _match_in_groups(pred: np.ndarray, cand: np.ndarray, search: float, diameter_px: float) -> np.ndarray:
    """Index into ``cand`` per prediction (−1: none): matched after the translation most predictions share
    (``_common_offset``), then the predictions left over after the translation most of them share.

    Beads on two ice surfaces move apart by their height difference × Δsin β between views, and a bead
    seen in one view only is predicted at height 0: from 0° to 6°, beads 500 Å apart in height part by 52 Å,
    4.4 px at 12 Å/px, more than the search radius of half a 10 nm bead. One common translation then
    suits one surface; the second pass finds the other (it lost every bead of one surface at random)."""
    ok = np.all(np.isfinite(pred), axis=1)
    hit = -np.ones(len(pred), dtype=int)
    left = np.ones(len(cand), dtype=bool)
    for _ in range(2):
        todo = np.flatnonzero(ok & (hit < 0))
        if len(todo) == 0 or not left.any():
            break
        free = np.flatnonzero(left)
        shifted = pred[todo] + _common_offset(pred[todo], cand[free], 4.0 * diameter_px, 0.5 * diameter_px)
        got = _match(shifted, cand[free], search)
        hit[todo[got >= 0]] = free[got[got >= 0]]
        left[free[got[got >= 0]]] = False
    return hit


def _predict_across(tracked: np.ndarray, tilts_rad: np.ndarray, t_new: float, window: int = 8) -> float:
    """Across-axis position at tilt ``t_new`` from a bead's recent (tilt, position) pairs: fit of
    a·cos β + b·sin β (b = height); one pair gives b = 0."""
    ok = np.isfinite(tracked)
    t, q = tilts_rad[ok][-window:], tracked[ok][-window:]
    if len(q) == 0:
        return np.nan
    if len(q) == 1 or np.ptp(t) < 1e-3:
        return float(q[-1] / np.cos(t[-1]) * np.cos(t_new))
    a = np.stack([np.cos(t), np.sin(t)], axis=1)
    coef, *_ = np.linalg.lstsq(a, q, rcond=None)
    return float(coef[0] * np.cos(t_new) + coef[1] * np.sin(t_new))


def track_beads(
    images: ArrayLike | torch.Tensor,
    tilts_deg: ArrayLike,
    tilt_axis_deg: float,
    diameter_px: float,
    shifts_px: ArrayLike | None = None,
    *,
    max_beads: int = 60,
    threshold_sd: float = 6.0,
    search_px: float | None = None,
    polarity: int = -1,
    template: torch.Tensor | None = None,
) -> np.ndarray:
    """Seed beads on the lowest-tilt view and track them in both directions.

    Parameters
    ----------
    images, tilts_deg, tilt_axis_deg
        The (n, y, x) views, their (n,) nominal tilts (degrees) and the tilt axis angle (degrees from
        image Y, counter-clockwise).
    diameter_px
        Bead diameter, pixels.
    shifts_px
        (n, 2) coarse alignment, (x, y) pixels: where the specimen centre lands in each view (zeros if None).
    max_beads
        Seed at most this many beads (the strongest, isolated ones).
    threshold_sd
        Detection threshold, robust SD of the score.
    search_px
        Matching radius about a prediction, pixels (default half a diameter).
    polarity
        −1 for dark beads.
    template
        (y, x) bead image to detect (``learn_bead_template``; ``bead_template`` for a sphere); None: learnt
        from ``images``.

    Returns
    -------
    np.ndarray
        (n_views, n_beads, 2) (x, y) positions, pixels from the image centre, NaN where not found.
    """
    tilts = np.asarray(tilts_deg, dtype=float)
    n = len(tilts)
    shifts = np.zeros((n, 2)) if shifts_px is None else np.asarray(shifts_px, dtype=float)
    if template is None:
        template = learn_bead_template(images, diameter_px, polarity=polarity, threshold_sd=threshold_sd)
    score = bead_score(images, diameter_px, polarity=polarity, template=template).cpu().numpy()
    cands = [
        rotate_xy(detect_beads(score[i], diameter_px, threshold_sd=threshold_sd)[0] - shifts[i], -tilt_axis_deg)
        for i in range(n)
    ]
    search = 0.5 * diameter_px if search_px is None else search_px
    ref = int(np.argmin(np.abs(tilts)))
    seeds = cands[ref][_isolated(cands[ref], 1.5 * diameter_px)][:max_beads]
    track = np.full((n, len(seeds), 2), np.nan)
    track[ref] = seeds
    rad = np.deg2rad(tilts)
    for direction in (1, -1):
        order = np.argsort(direction * tilts, kind="stable")
        path = [v for v in order if direction * (tilts[v] - tilts[ref]) > 0]
        done = [ref]
        for v in path:
            pred = np.full((len(seeds), 2), np.nan)
            for b in range(len(seeds)):
                pred[b, 0] = _predict_across(track[done, b, 0], rad[done], rad[v])
                along = track[done, b, 1]
                pred[b, 1] = np.nanmean(along[np.isfinite(along)][-3:]) if np.isfinite(along).any() else np.nan
            hit = _match_in_groups(pred, cands[v], search, diameter_px)
            track[v, hit >= 0] = cands[v][hit[hit >= 0]]
            done.append(v)
    image_frame = rotate_xy(track, tilt_axis_deg) + shifts[:, None, :]
    return image_frame


def fill_gaps(
    positions_px: np.ndarray,
    predicted_px: np.ndarray,
    images: ArrayLike | torch.Tensor,
    diameter_px: float,
    *,
    threshold_sd: float = 4.0,
    radius_px: float | None = None,
    polarity: int = -1,
    template: torch.Tensor | None = None,
) -> np.ndarray:
    """Fill the NaN gaps of (n, m, 2) ``positions_px`` with the bead detected in (n, y, x) ``images`` nearest
    the model's (n, m, 2) ``predicted_px`` (within ``radius_px``, default a quarter of ``diameter_px``; all in
    pixels from the image centre), searching at a lower threshold than tracking; ``template`` as for
    ``track_beads`` (None: learnt from ``images``). Returns the filled copy."""
    out = np.array(positions_px, dtype=float, copy=True)
    if template is None:
        template = learn_bead_template(images, diameter_px, polarity=polarity)
    score = bead_score(images, diameter_px, polarity=polarity, template=template).cpu().numpy()
    radius = diameter_px / 4 if radius_px is None else radius_px
    for v in range(out.shape[0]):
        gaps = ~np.all(np.isfinite(out[v]), axis=-1) & np.all(np.isfinite(predicted_px[v]), axis=-1)
        if not gaps.any():
            continue
        cand, _ = detect_beads(score[v], diameter_px, threshold_sd=threshold_sd)
        hit = _match(predicted_px[v][gaps], cand, radius)
        idx = np.nonzero(gaps)[0]
        out[v, idx[hit >= 0]] = cand[hit[hit >= 0]]
    return out


__all__ = [
    "bead_template",
    "bead_score",
    "detect_beads",
    "fill_gaps",
    "learn_bead_template",
    "radial_profile",
    "track_beads",
]
