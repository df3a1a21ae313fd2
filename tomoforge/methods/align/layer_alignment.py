"""Marker-free alignment by layer tracks: the tilt axis, the shifts and the tilt offset of a series whose
coarse alignment is known (issue 16).

Patch tracks in a thick specimen drift with what a patch shows as the tilt changes, and put the tilt axis
0.2–1.0° off on the foreign-like series (3.7 px RMS of 2 Å pixels); landmarks of one height matched against
thin layers of a reconstruction do not (``layer_tracks``). From the coarse shifts, tilt axis, tilt offset and
slab:

1. the slab: given, else the heights where a weighted back-projection with the coarse alignment varies
   (``reproject.specimen_slab``);
2. ``passes`` × (the shifts: two rounds of layer tracks fitted with the axis held (``axis_fit.fit_tilt_axis``,
   each match weighed by its probability of not being noise, ``LayerTrackingSettings.noise_radius_px``),
   extrapolated to their limit (``extrapolated_shifts``); then the axis: ``layer_tracks.refine_axis_by_layers``,
   two rounds and the secant), each pass from the last one's shifts and axis; a last round of tracks fitted with
   the axis held gives the shifts and the solution;
3. the tilt offset: from the views' mean intensities where they follow Beer–Lambert's law, else from the
   slab's extent in a back-projection with the axis and shifts found (``geometry``).

The result is a ``FiducialSolution`` of the last round's tracks (its per-view residual is the RMS of the
landmarks' misfit in that view), so the protocols treat it as they treat a patch or bead fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.typing import ArrayLike

from tomoforge.methods.align.axis_fit import AxisFit, fit_tilt_axis
from tomoforge.methods.align.filters import bandpass, edge_taper
from tomoforge.methods.align.geometry import intensity_offset_deg, slab_offset_deg
from tomoforge.methods.align.layer_tracks import LayerTrackingSettings, refine_axis_by_layers, track_layer_points
from tomoforge.methods.align.projection_model import ProjectionModel
from tomoforge.methods.align.reproject import specimen_profile, specimen_slab
from tomoforge.methods.align.solve import FiducialSolution
from tomoforge.methods.align.transform import rotation_2d, warp_images
from tomoforge.methods.binning import bin_images
from tomoforge.methods.fourier import as_tensor

MAX_RATIO = 0.9  # the extrapolation of the shifts at most 9 times the last move


@dataclass
class LayerAlignment:
    """A layer-track alignment: the solution (model shifts in Å), the (n, m, 2) tracks of its last round
    (pixels from the image centre, NaN where a view does not see a landmark), their (n, m) scores, the slab
    used (px, and whether it was estimated here), the tilt offset's source, and per pass the rounds of
    ``refine_axis_by_layers`` (axis the layers were made with, axis their tracks fit; degrees)."""

    solution: FiducialSolution
    tracks_px: np.ndarray
    scores: np.ndarray
    thickness_px: float
    thickness_estimated: bool
    offset_source: str
    rounds: list[tuple[float, float]] = field(default_factory=list)


def _axis_frame(x: torch.Tensor, axis_deg: float, shifts_px: np.ndarray) -> torch.Tensor:
    """Band-passed (64 px to 5 px periods of these images, as coarse alignment filters), tapered views in the
    tilt-axis frame (axis along y, specimen centre at the image centre)."""
    ny, nx = x.shape[-2:]
    f = bandpass(x, min(ny, nx) / 4, 5.0)
    rot = np.repeat(rotation_2d(axis_deg)[None], len(x), 0)
    return warp_images(f - f.mean(dim=(-2, -1), keepdim=True), rot, shifts_px) * edge_taper(
        (ny, nx), min(ny, nx) / 10, x.device
    )


def slab_thickness_px(
    images: ArrayLike | torch.Tensor, tilts_deg: ArrayLike, tilt_axis_deg: float, shifts_px: ArrayLike
) -> float | None:
    """The specimen slab's thickness (pixels) under an alignment: the extent of the heights where a weighted
    back-projection of the views varies (``reproject.specimen_slab``, at half the sampling from 128 px up);
    None where the profile shows no slab."""
    x = as_tensor(images)
    views = _axis_frame(x, tilt_axis_deg, np.asarray(shifts_px, dtype=float).reshape(len(x), 2))
    factor = 2 if min(views.shape[-2:]) >= 128 else 1
    small = bin_images(views, factor) if factor > 1 else views
    heights, variance = specimen_profile(small, tilts_deg, 0.75 * small.shape[-1])
    slab = specimen_slab(heights * factor, variance)
    return None if slab is None else slab[1]


def _without_translation(d: np.ndarray, tilts_deg: np.ndarray, axis_deg: float) -> np.ndarray:
    """(n, 2) shift changes less their part that a 3D translation of the specimen makes (across the axis
    X cos β + Z sin β, along it Y): the gauge, which each fit of landmark tracks sets by its own points."""
    rot = rotation_2d(axis_deg)
    a = d @ rot  # the axis frame: (across, along)
    b = np.deg2rad(tilts_deg)
    basis = np.c_[np.cos(b), np.sin(b)]
    a[:, 0] -= basis @ np.linalg.lstsq(basis, a[:, 0], rcond=None)[0]
    a[:, 1] -= a[:, 1].mean()
    return a @ rot.T


def extrapolated_shifts(steps: list[np.ndarray], tilts_deg: np.ndarray, axis_deg: float) -> np.ndarray:
    """The limit of shifts s₀ → s₁ → s₂ from rounds of layer tracks, each of which removes only part of a
    smooth error (the layers are made with the same error: on a 192² series whose coarse shifts were off
    by up to 15 px of 2 Å, each round removed 15–20% of it): with the moves d₁ = s₁ − s₀ and d₂ = s₂ − s₁
    (the gauge's translation removed), their ratio q = ⟨d₂, d₁⟩/⟨d₁, d₁⟩ held in [0, ``MAX_RATIO``], the
    limit s₂ + d₂ q / (1 − q) (Aitken's Δ²). Moves of noise (q ≈ 0) leave s₂."""
    s0, s1, s2 = steps
    d1 = _without_translation(s1 - s0, tilts_deg, axis_deg)
    d2 = _without_translation(s2 - s1, tilts_deg, axis_deg)
    q = float(np.clip(np.sum(d1 * d2) / max(float(np.sum(d1 * d1)), 1e-12), 0.0, MAX_RATIO))
    return s2 + d2 * q / (1.0 - q)


def layer_alignment(
    images: ArrayLike | torch.Tensor,
    tilts_deg: ArrayLike,
    tilt_axis_deg: float,
    pixel_size_A: float,
    shifts_px: ArrayLike,
    *,
    tilt_offset_deg: float | None = None,
    thickness_px: float | None = None,
    settings: LayerTrackingSettings = LayerTrackingSettings(),
    passes: int = 2,
) -> LayerAlignment:
    """The tilt axis, shifts and tilt offset from layer tracks (module docstring).

    Parameters
    ----------
    images
        (n, y, x) views (not filtered: their means give the tilt offset).
    tilts_deg
        (n,) nominal tilt angles, degrees.
    tilt_axis_deg
        The coarse tilt axis, degrees from image Y, counter-clockwise.
    pixel_size_A
        Å per pixel of ``images``.
    shifts_px
        (n, 2) coarse (x, y) shifts: where the specimen centre lands, pixels from the image centre.
    tilt_offset_deg
        The coarse tilt offset (degrees) the layers are made with (None: estimated first as in step 3).
    thickness_px
        The slab's thickness, pixels (None: estimated, step 1).
    settings
        ``LayerTrackingSettings`` (sizes in pixels of ``images``).
    passes
        Runs of ``refine_axis_by_layers``, each from the last one's axis and shifts (at least 1).

    Returns
    -------
    LayerAlignment
    """
    x = as_tensor(images)
    n = x.shape[0]
    nominal = np.asarray(tilts_deg, dtype=float)
    shifts = np.asarray(shifts_px, dtype=float).reshape(n, 2)
    axis = float(tilt_axis_deg)
    means = x.mean(dim=(-2, -1)).double().cpu().numpy()
    from_means = intensity_offset_deg(means, nominal)

    def offset_now(axis_deg: float, shifts_now: np.ndarray, slab_px: float) -> tuple[float, str]:
        if from_means is not None:
            return from_means, "the views' mean intensities (Beer–Lambert)"
        return slab_offset_deg(_axis_frame(x, axis_deg, shifts_now), nominal, slab_px, 0.0), "the slab's extent"

    offset = 0.0 if tilt_offset_deg is None else float(tilt_offset_deg)
    estimated = thickness_px is None
    if thickness_px is None:
        found = slab_thickness_px(x, nominal + offset, axis, shifts)
        thickness_px = found if found is not None else 0.5 * float(x.shape[-1])
    if tilt_offset_deg is None:
        offset, _ = offset_now(axis, shifts, thickness_px)
    tilts = nominal + offset
    rounds: list[tuple[float, float]] = []

    def mixture_fit(tracks: np.ndarray, tilts: np.ndarray, axis: float) -> AxisFit:
        return fit_tilt_axis(tracks, tilts, axis, hold_axis=True, uniform_radius_px=settings.noise_radius_px)

    for _ in range(max(1, passes)):
        steps = [shifts]
        for _ in range(2):
            tracks, _, _ = track_layer_points(x, tilts, axis, steps[-1], thickness_px, settings=settings)
            steps.append(mixture_fit(tracks, tilts, axis).shifts_px)
        shifts = extrapolated_shifts(steps, tilts, axis)
        layer = refine_axis_by_layers(x, tilts, axis, shifts, thickness_px, settings=settings, fit_shifts=False)
        rounds += layer.rounds
        axis = layer.tilt_axis_deg
    tracks, scores, _ = track_layer_points(x, tilts, axis, shifts, thickness_px, settings=settings)
    fit = mixture_fit(tracks, tilts, axis)
    shifts = fit.shifts_px
    offset, source = offset_now(axis, shifts, thickness_px)
    weights = np.nan_to_num(fit.weights)
    misfit = np.nan_to_num(np.sum(fit.residuals_px**2, axis=-1))
    view_rms = np.sqrt(np.sum(weights * misfit, axis=1) / np.maximum(np.sum(weights, axis=1), 1e-12))
    point_rms = np.sqrt(np.sum(weights * misfit, axis=0) / np.maximum(np.sum(weights, axis=0), 1e-12))
    used = weights > 0.5
    # the fit's points are in the frame of the tilts it was given; the model's tilts are nominal + the offset
    # found, a rotation of the specimen about the axis by the change of offset
    turn = np.deg2rad(offset - (tilts[0] - nominal[0]))
    c, s = np.cos(turn), np.sin(turn)
    p = fit.points_px
    points = np.c_[c * p[:, 0] - s * p[:, 2], p[:, 1], s * p[:, 0] + c * p[:, 2]]
    solution = FiducialSolution(
        model=ProjectionModel(nominal + offset, axis, shifts * pixel_size_A),
        points_px=points,
        residuals_px=fit.residuals_px,
        used=used,
        dropped_beads=np.zeros(0, dtype=int),
        rms_px=fit.rms_px,
        view_rms_px=view_rms,
        bead_rms_px=point_rms,
        tilt_axis_deg=axis,
        tilt_offset_deg=offset,
        x_tilt_level_deg=0.0,
        unobserved_views=np.nonzero(~used.any(axis=1))[0],
    )
    return LayerAlignment(solution, tracks, scores, float(thickness_px), estimated, source, rounds)


__all__ = ["LayerAlignment", "extrapolated_shifts", "layer_alignment", "slab_thickness_px"]
