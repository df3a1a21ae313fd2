"""Landmarks at one height: each view matched against thin layers of a reconstruction (issue 16).

A patch tracked from view to view in a thick specimen is a mixture of material at many heights; as the tilt
changes, material enters and leaves it and its tracked position drifts, along the tilt axis too, by amounts
set by the specimen's content. Over a 2048 Å field of an 1100 Å slab that drift put the tilt axis 0.2–1.0°
off whatever the patch size, the noise, the piece length or a robust fit (benchmarks/RESULTS.md), and
projection matching against the whole slab's reprojection errs the same way. Here each landmark is a
patch of one thin layer of the specimen instead:

1. the views, band-passed, are turned into the tilt-axis frame (axis along image y, the specimen centre at
   the image centre, ``shifts_px``) and back-projected (ramp-weighted) into layers ``layer_px`` thick
   spanning the slab, one back-projection per view kept apart;
2. on a grid across the field, the ``per_xy`` layers with the most content in a patch are the landmarks;
3. in each view, a landmark's patch of its layer, compressed by cos β across the axis, is the reference,
   and the view is cross-correlated with it about where the model puts the landmark; the view itself and
   ``exclude`` neighbours on each side are left out of the layer (they would pull the match back to the
   model being tested: their errors of axis and shift are nearly the view's own). Every view is matched
   against the same 3D reference: no chain, no drift.
4. most matches of a noisy series are noise, and a search about the model finds those anywhere in its disk,
   centred on the model: the fits (``fit_tilt_axis``) weigh each match by its probability of being a true one
   under a mixture of a Gaussian and a uniform disk of ``noise_radius_px``, so that they do not follow the
   model being tested.

The positions found are tracks in the form ``solve_fiducial_alignment`` and ``axis_fit.fit_tilt_axis``
take. A layer made with a wrong tilt axis still shares part of that error with the views (its other
views' streaks), so a fit of these tracks moves the axis only part of the way to the truth (about 40%
per round on the foreign-like series, from 0.4–0.6° off, with 2 views excluded on each side; 55–60% with 8,
``axis_exclude``, and Tukey weights; 72–79% from 0.2° off with the mixture weights, seed 4, true shifts);
``refine_axis_by_layers`` finds the fixed point from two rounds (the secant).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike

from tomoforge.methods.align.axis_fit import fit_tilt_axis
from tomoforge.methods.align.filters import bandpass, cross_correlation, edge_taper
from tomoforge.methods.align.reproject import ramp_filter
from tomoforge.methods.align.transform import rotation_2d, warp_images
from tomoforge.methods.fourier import as_tensor


@dataclass(frozen=True, kw_only=True)
class LayerTrackingSettings:
    """Sizes in pixels of the images given: ``patch_px`` side of a landmark's patch, ``spacing_px`` its grid,
    ``layer_px`` layer thickness, ``per_xy`` layers kept per grid point, ``low_cut_px``/``high_cut_px`` the
    band-pass periods, ``radius_px`` the search radius, ``exclude`` neighbouring views left out of the
    reference on each side (``axis_exclude`` in the rounds that fit the axis), ``min_score`` normalised
    correlation below which a view does not see a landmark."""

    patch_px: int = 24
    spacing_px: float = 12.0
    layer_px: float = 8.0
    per_xy: int = 3
    low_cut_px: float = 16.0
    high_cut_px: float = 2.5
    radius_px: float = 4.0
    exclude: int = 2
    # the rounds that fit the axis leave more views out (``refine_axis_by_layers``): with 2 (6° of a 3° series)
    # the fit of the axis moved 0.46 of the way from layers made 0.2° off and the fixed point of seed 1 of the
    # foreign-like series settled 0.15° low (1.16 px RMS of 2 Å); with 8 (24°) 0.61 of the way. The shifts keep
    # 2: with 8 their error from the true alignment rose from 0.34 to 0.39 px of 2 Å (seed 0).
    axis_exclude: int = 8
    min_score: float = 0.1
    # the fits weigh each match by its probability of being one (``fit_tilt_axis``'s mixture with matches of
    # noise spread over this radius) instead of by Tukey biweights: on the foreign-like series most matches are
    # noise (median misfit 2.4 px with the true alignment), centred on the model, and the Tukey fit kept 0.6 of
    # a shift error put on the views and made the axis's fixed point 0.07° off (seed 4, true shifts; 0.43 and
    # 0.03° with this); None: Tukey
    noise_radius_px: float | None = 5.0


def layer_backprojections(axis_views: torch.Tensor, tilts_deg: ArrayLike, edges_px: np.ndarray) -> torch.Tensor:
    """(n, L, y, x) ramp-weighted back-projection of each tilt-axis-frame view (axis along y) into the layers
    between consecutive heights ``edges_px`` (pixels from the specimen centre), averaged over each layer's
    height (a box integral along x of each view's cumulative sum)."""
    n, ny, nx = axis_views.shape
    cum = torch.cat([axis_views.new_zeros(n, ny, 1), torch.cumsum(ramp_filter(axis_views), dim=-1)], dim=-1)
    b = np.deg2rad(np.asarray(tilts_deg, dtype=float))
    c = torch.as_tensor(np.cos(b), device=cum.device)[:, None]
    s = torch.as_tensor(np.sin(b), device=cum.device)[:, None]
    u = (torch.arange(nx, device=cum.device, dtype=torch.float64) - nx // 2)[None]

    def at(pos: torch.Tensor) -> torch.Tensor:
        k0 = pos.floor().long().clamp(0, nx - 1)
        frac = (pos - k0).to(cum.dtype)[:, None, :]
        g0 = torch.gather(cum, 2, k0[:, None, :].expand(-1, ny, -1))
        g1 = torch.gather(cum, 2, (k0 + 1)[:, None, :].expand(-1, ny, -1))
        return g0 + (g1 - g0) * frac

    layers = []
    for z0, z1 in zip(edges_px[:-1], edges_px[1:]):
        mid = u * c + 0.5 * (z0 + z1) * s + nx // 2
        half = (s.abs() * (z1 - z0) / 2).clamp(min=0.5).expand_as(mid)
        lo, hi = (mid - half + 0.5).clamp(0, nx), (mid + half + 0.5).clamp(0, nx)
        layers.append((at(hi) - at(lo)) / (2 * half).to(cum.dtype)[:, None, :])
    return torch.stack(layers, dim=1)


def _sample(images: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(C, B, p, p) bilinear samples of every one of the (C, Y, X) images at index coordinates x, y (B, p, p);
    zero outside."""
    ny, nx = images.shape[-2:]
    bsz, p, _ = x.shape
    grid = torch.stack([2 * (x + 0.5) / nx - 1, 2 * (y + 0.5) / ny - 1], dim=-1).to(images.dtype)
    out = F.grid_sample(images[None], grid.reshape(1, bsz * p, p, 2), align_corners=False, padding_mode="zeros")
    return out[0].reshape(images.shape[0], bsz, p, p)


def _peaks(cc: torch.Tensor, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y) offsets (px) of the highest point of each (B, p, p) centred map within ``radius``, refined by
    a parabola through its neighbours in x and in y, and its height."""
    bsz, p, _ = cc.shape
    q = torch.arange(p, device=cc.device) - p // 2
    inside = (q[:, None] ** 2 + q[None, :] ** 2) <= radius**2
    k = torch.where(inside[None], cc, torch.full_like(cc, -torch.inf)).reshape(bsz, -1).argmax(dim=1)
    iy, ix = (k // p).clamp(1, p - 2), (k % p).clamp(1, p - 2)
    b = torch.arange(bsz, device=cc.device)
    c0 = cc[b, iy, ix]

    def vertex(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        return ((lo - hi) / (2 * (lo - 2 * c0 + hi)).clamp(max=-1e-12)).clamp(-1, 1)

    dx = vertex(cc[b, iy, ix - 1], cc[b, iy, ix + 1])
    dy = vertex(cc[b, iy - 1, ix], cc[b, iy + 1, ix])
    return (
        (ix - p // 2).double().cpu().numpy() + dx.double().cpu().numpy(),
        (iy - p // 2).double().cpu().numpy() + dy.double().cpu().numpy(),
        c0.double().cpu().numpy(),
    )


def track_layer_points(
    images: ArrayLike | torch.Tensor,
    tilts_deg: ArrayLike,
    tilt_axis_deg: float,
    shifts_px: ArrayLike,
    thickness_px: float,
    *,
    settings: LayerTrackingSettings = LayerTrackingSettings(),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Landmarks of one height matched in every view against thin layers of the specimen (module docstring).

    Parameters
    ----------
    images
        (n, y, x) views.
    tilts_deg
        (n,) tilt angles of the model, degrees (the nominal tilts plus the tilt offset).
    tilt_axis_deg
        The tilt axis of the model, degrees from image Y, counter-clockwise.
    shifts_px
        (n, 2) where the specimen centre lands in each view, (x, y) pixels from the image centre.
    thickness_px
        The slab's thickness, pixels: the layers span it (and one layer more on each side).
    settings
        ``LayerTrackingSettings``.

    Returns
    -------
    tracks
        (n, m, 2) (x, y) positions, pixels from the image centre, NaN where the score is below ``min_score``.
    scores
        (n, m) normalised correlation of each match.
    points
        (m, 3) the landmarks' (x, y, z) in the specimen, pixels (x across the axis, y along it).
    """
    st = settings
    x = as_tensor(images)
    n, ny, nx = x.shape
    tilts = np.asarray(tilts_deg, dtype=float)
    shifts = np.asarray(shifts_px, dtype=float).reshape(n, 2)
    rot = rotation_2d(tilt_axis_deg)
    views = warp_images(bandpass(x, st.low_cut_px, st.high_cut_px), np.repeat(rot[None], n, 0), shifts)
    count = int(np.ceil((thickness_px + 2 * st.layer_px) / st.layer_px))
    edges = (np.arange(count + 1) - count / 2) * st.layer_px
    per_view = layer_backprojections(views, tilts, edges).to(views.dtype)  # (n, L, y, x)
    total = per_view.sum(dim=0)
    p = st.patch_px
    q = torch.arange(p, device=x.device, dtype=torch.float64) - p // 2
    taper = edge_taper((p, p), p / 4, x.device)
    gx = np.arange(-np.floor((nx / 2 - p) / st.spacing_px), np.floor((nx / 2 - p) / st.spacing_px) + 1) * st.spacing_px
    gy = np.arange(-np.floor((ny / 2 - p) / st.spacing_px), np.floor((ny / 2 - p) / st.spacing_px) + 1) * st.spacing_px
    grid = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)
    k = len(grid)
    px = torch.as_tensor(grid[:, 0], device=x.device)[:, None, None]
    py = torch.as_tensor(grid[:, 1], device=x.device)[:, None, None] + q[None, :, None] + ny // 2
    py = py.expand(-1, p, p)
    patches = _sample(total, (px + q[None, None, :] + nx // 2).expand(-1, p, p), py)  # (L, k, p, p)
    energy = (((patches - patches.mean(dim=(-2, -1), keepdim=True)) * taper) ** 2).sum(dim=(-2, -1))
    top = np.argsort(-energy.T.cpu().numpy(), axis=1)[:, : st.per_xy]
    j = np.repeat(np.arange(k), top.shape[1])
    lay = top.ravel()
    points = np.c_[grid[j], 0.5 * (edges[lay] + edges[lay + 1])]
    m = len(points)
    lay_t = torch.as_tensor(lay, device=x.device)
    ref_y = torch.as_tensor(points[:, 1], device=x.device)[:, None, None] + q[None, :, None] + ny // 2
    ref_y = ref_y.expand(-1, p, p)
    tracks, scores = np.full((n, m, 2), np.nan), np.zeros((n, m))
    order = np.argsort(tilts, kind="stable")
    rank = np.empty(n, dtype=int)
    rank[order] = np.arange(n)
    cos, sin = np.cos(np.deg2rad(tilts)), np.sin(np.deg2rad(tilts))
    for v in range(n):
        near = order[max(0, rank[v] - st.exclude) : rank[v] + st.exclude + 1]
        layers = total - per_view[near].sum(dim=0)
        rx = torch.as_tensor(points[:, 0], device=x.device)[:, None, None] + q[None, None, :] / cos[v] + nx // 2
        ref = _sample(layers, rx.expand(-1, p, p), ref_y)[lay_t, torch.arange(m, device=x.device)]
        u = points[:, 0] * cos[v] + points[:, 2] * sin[v]
        hx = torch.as_tensor(u, device=x.device)[:, None, None] + q[None, None, :] + nx // 2
        here = _sample(views[v][None], hx.expand(-1, p, p), ref_y)[0]
        ref = (ref - ref.mean(dim=(-2, -1), keepdim=True)) * taper
        here = (here - here.mean(dim=(-2, -1), keepdim=True)) * taper
        dx, dy, height = _peaks(cross_correlation(here, ref), st.radius_px)
        norm = (ref.norm(dim=(-2, -1)) * here.norm(dim=(-2, -1))).clamp(min=1e-12).double().cpu().numpy()
        scores[v] = height / norm
        tracks[v] = shifts[v] + np.c_[u + dx, points[:, 1] + dy] @ rot.T
    tracks[scores < st.min_score] = np.nan
    return tracks, scores, points


@dataclass
class LayerAxis:
    """The tilt axis found (degrees), per round the axis the layers were made with and the one their tracks
    fit (degrees), and the (n, 2) shifts (px) the tracks of a last round give with the axis held (None: not
    fitted)."""

    tilt_axis_deg: float
    rounds: list[tuple[float, float]] = field(default_factory=list)
    shifts_px: np.ndarray | None = None


# a' − a ≈ RATE · (truth − a): each round of layer tracks moves the axis 0.36–0.53 of the way on the foreign-like
# series (benchmarks/RESULTS.md, "The tilt axis from layer tracks"); a secant slope outside [-1, -1/4] is noise.
RATE, SLOWEST = 0.4, 0.25


def secant_root(a0: float, f0: float, a1: float, f1: float, *, min_move_deg: float = 0.05) -> float:
    """The fixed point of a ↦ a' (degrees) from two rounds (a₀ → f₀, a₁ → f₁): the root of g(a) = a' − a along
    the secant, its slope held within [−1, −1/4] (−1: the second fit itself; −1/4: four times its step). Where
    the rounds moved less than ``min_move_deg`` the secant's slope is the ratio of two differences of noise
    (a second pass from near the truth: −0.09° where both rounds were within 0.02°), so the typical slope
    −``RATE`` is taken instead."""
    g0, g1 = f0 - a0, f1 - a1
    slope = (g1 - g0) / (a1 - a0) if abs(a1 - a0) >= min_move_deg else -RATE
    slope = float(np.clip(slope, -1.0, -SLOWEST)) if slope < 0 else -RATE
    return a1 - g1 / slope


def refine_axis_by_layers(
    images: ArrayLike | torch.Tensor,
    tilts_deg: ArrayLike,
    tilt_axis_deg: float,
    shifts_px: ArrayLike,
    thickness_px: float,
    *,
    settings: LayerTrackingSettings = LayerTrackingSettings(),
    max_step_deg: float = 1.5,
    min_move_deg: float = 0.05,
    fit_shifts: bool = True,
) -> LayerAxis:
    """The tilt axis from layer tracks (``track_layer_points`` + ``fit_tilt_axis``), as the fixed point of
    "make layers with axis a, fit the axis a' their tracks give": a' − a is linear in a near the truth and
    vanishes there, so two rounds (from a₀, then from a₁ = a₀') give it by the secant through (a₀, a₀' − a₀)
    and (a₁, a₁' − a₁) (``secant_root``; rounds that move less than ``min_move_deg`` take the typical rate
    instead of their own), the step from a₀ limited to ``max_step_deg``. With ``fit_shifts``, a last round of
    tracks made with that axis gives the shifts (``fit_tilt_axis`` with the axis held). Arguments as
    ``track_layer_points``."""
    out = LayerAxis(tilt_axis_deg=float(tilt_axis_deg))
    a = float(tilt_axis_deg)
    wide = replace(settings, exclude=settings.axis_exclude)
    for _ in range(2):
        tracks, _, _ = track_layer_points(images, tilts_deg, a, shifts_px, thickness_px, settings=wide)
        fitted = fit_tilt_axis(tracks, tilts_deg, a, uniform_radius_px=settings.noise_radius_px).tilt_axis_deg
        out.rounds.append((a, fitted))
        a = fitted
    (a0, f0), (a1, f1) = out.rounds
    root = secant_root(a0, f0, a1, f1, min_move_deg=min_move_deg)
    out.tilt_axis_deg = float(np.clip(root, a0 - max_step_deg, a0 + max_step_deg))
    if fit_shifts:
        tracks, _, _ = track_layer_points(
            images, tilts_deg, out.tilt_axis_deg, shifts_px, thickness_px, settings=settings
        )
        fit = fit_tilt_axis(
            tracks, tilts_deg, out.tilt_axis_deg, hold_axis=True, uniform_radius_px=settings.noise_radius_px
        )
        out.shifts_px = fit.shifts_px
    return out


__all__ = [
    "LayerAxis",
    "LayerTrackingSettings",
    "layer_backprojections",
    "refine_axis_by_layers",
    "secant_root",
    "track_layer_points",
]
