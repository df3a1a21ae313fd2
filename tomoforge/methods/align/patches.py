"""Patch tracking (fiducial-less alignment, IMOD tiltxcorr -patch): patches followed through the series.

Patches are laid on a grid of the lowest-tilt view (about the specimen centre given by the coarse
shifts) and followed outwards in both directions. For each view, every patch of the last view it
was found in is cosine-stretched across the tilt axis into the frame of the new view
(across-axis distances scale by cos β_new / cos β_old) and cross-correlated with the new view
about the predicted position; the peak moves the patch. Images are band-passed first and patches
edge-tapered. A patch whose normalised correlation falls below ``min_score`` is a gap in that view
(tracking carries on from its last good position); one that leaves the image ends its track.

The tracks have the form ``solve_fiducial_alignment`` takes ((n_views, n_patches, 2) pixels from
the image centre, NaN = gap), and ``patch_alignment`` solves the same projection model with it.
Positions are (x, y) pixels from the image centre (index n // 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from numpy.typing import ArrayLike

from tomoforge.methods.align.coarse import stretch_matrix
from tomoforge.methods.align.filters import bandpass, correlation_peak, cross_correlation, edge_taper
from tomoforge.methods.align.geometry import refine_geometry
from tomoforge.methods.align.layer_alignment import layer_alignment
from tomoforge.methods.align.layer_tracks import LayerTrackingSettings
from tomoforge.methods.align.projection_model import ProjectionModel
from tomoforge.methods.align.solve import (
    MIN_LANDMARKS,
    FiducialSolution,
    Grouping,
    TooFewLandmarksError,
    solve_fiducial_alignment,
)
from tomoforge.methods.align.transform import warp_images
from tomoforge.methods.fourier import as_tensor


def patch_grid(
    shape: tuple[int, int],
    patch_px: int,
    spacing_px: float,
    *,
    border_px: float = 0.0,
    centre_px: np.ndarray | None = None,
) -> np.ndarray:
    """(k, 2) (x, y) patch centres (pixels from the image centre) on a square grid of
    ``spacing_px`` about ``centre_px``, each patch at least ``border_px`` inside the image."""
    ny, nx = shape
    c = np.zeros(2) if centre_px is None else np.asarray(centre_px, dtype=float)
    half = patch_px / 2 + border_px
    kx = np.arange(-np.floor(nx / 2 / spacing_px), np.floor(nx / 2 / spacing_px) + 1)
    ky = np.arange(-np.floor(ny / 2 / spacing_px), np.floor(ny / 2 / spacing_px) + 1)
    gx, gy = np.meshgrid(kx * spacing_px + c[0], ky * spacing_px + c[1])
    pts = np.c_[gx.ravel(), gy.ravel()]
    inside = (
        (pts[:, 0] - half >= -(nx // 2))
        & (pts[:, 0] + half <= nx - nx // 2 - 1)
        & (pts[:, 1] - half >= -(ny // 2))
        & (pts[:, 1] + half <= ny - ny // 2 - 1)
    )
    return pts[inside]


def _extract(
    image: torch.Tensor, centres_px: np.ndarray, matrices: np.ndarray, patch_px: int, taper: torch.Tensor
) -> torch.Tensor:
    """(k, p, p) tapered, mean-removed patches: patch_j(x) = image(centre_j + M_j x)."""
    k = len(centres_px)
    out = warp_images(image.expand(k, *image.shape), matrices, centres_px, out_shape=(patch_px, patch_px))
    out = out - out.mean(dim=(-2, -1), keepdim=True)
    return out * taper


@dataclass(frozen=True, kw_only=True)
class PatchTrackingSettings:
    """How patches are laid out and followed (``track_patches``); sizes in pixels of the images tracked.

    ``patch_px``: side of a square patch; ``spacing_px``: grid spacing on the lowest tilt (default
    ``patch_px`` · 0.75); ``low_cut_px``: high-pass period (default ``patch_px`` / 2); ``high_cut_px``: low-pass
    period (1/e); ``min_score``: normalised correlation below which a patch is a gap in a view;
    ``max_shift_px``: search radius per step (default ``patch_px`` / 4).
    """

    patch_px: int = 64
    spacing_px: float | None = None
    low_cut_px: float | None = None
    high_cut_px: float = 2.0
    min_score: float = 0.3
    max_shift_px: float | None = None


@dataclass(frozen=True, kw_only=True)
class PatchAlignmentSettings:
    """How ``patch_alignment`` tracks patches and solves the projection model.

    ``min_views_fraction``: a track is kept when it is seen in at least this fraction of the views;
    ``contour_views``: cut each track into pieces of this many views (None: whole tracks), consecutive
    pieces sharing ``contour_overlap`` views (``split_into_contours``); ``rotation``, ``tilt``,
    ``group_size``, ``outlier_px`` (px), ``level``: as ``solve_fiducial_alignment`` takes them. ``level`` is
    off by default: a patch's height is the average of its content, so the patch "points" scatter in z and
    levelling them picks a poor tilt offset (on a ±100 Å slab levelling cost 0.4 px RMS more). ``tilt`` is
    "fixed" by default for the same reason: refining tilt angles against patch tracks absorbed tracking
    errors (simulated series with 350 Å ice: 0.43 px RMS fixed, 1.94 px grouped).
    ``projection_matching``: then refine the shifts, the tilt axis (within ``axis_range_deg``) and the tilt
    offset by projection matching against the other views (``geometry.refine_geometry``), seeded by the
    patch solution: patch tracks are biased by what a patch shows drifting with the tilt, projection matching
    is not (bead-free crowded slab with ice texture and a 1.4° axis error: 2.0 px RMS → 0.14 px at 12 Å/px).
    ``layers``: align by layer tracks instead (``layer_alignment.layer_alignment``, ``layer_passes`` passes):
    no patches are tracked and the options above are not used. None (the default here; the patch-tracking
    protocol's default is layers): patches.
    """

    tracking: PatchTrackingSettings = field(default_factory=PatchTrackingSettings)
    min_views_fraction: float = 0.5
    contour_views: int | None = None
    contour_overlap: int = 4
    rotation: Grouping = "single"
    tilt: Grouping = "fixed"
    group_size: int = 5
    outlier_px: float = 2.0
    level: bool = False
    projection_matching: bool = True
    axis_range_deg: float = 1.0
    layers: LayerTrackingSettings | None = None
    layer_passes: int = 2


def track_patches(
    images: ArrayLike | torch.Tensor,
    tilts_deg: ArrayLike,
    tilt_axis_deg: float,
    shifts_px: ArrayLike | None = None,
    *,
    settings: PatchTrackingSettings = PatchTrackingSettings(),
) -> tuple[np.ndarray, np.ndarray]:
    """Track patches through a tilt series.

    Parameters
    ----------
    images, tilts_deg, tilt_axis_deg
        The (n, y, x) views to track patches through, their (n,) nominal tilts and the tilt axis angle
        (degrees, the axis from image Y, counter-clockwise).
    shifts_px
        (n, 2) where the specimen centre lands in each view, (x, y) pixels (zeros if None).
    settings
        Patch size, grid, filter and acceptance (``PatchTrackingSettings``).

    Returns
    -------
    tracks
        (n, k, 2) positions, pixels from the image centre, NaN = gap.
    scores
        (n, k) normalised correlation scores (1 on the reference view).
    """
    patch_px, min_score = settings.patch_px, settings.min_score
    x = as_tensor(images)
    n, ny, nx = x.shape
    tilts = np.asarray(tilts_deg, dtype=float)
    shifts = np.zeros((n, 2)) if shifts_px is None else np.asarray(shifts_px, dtype=float).reshape(n, 2)
    filt = bandpass(x, settings.low_cut_px or patch_px / 2, settings.high_cut_px)
    taper = edge_taper((patch_px, patch_px), patch_px / 8, x.device)
    limit = settings.max_shift_px or patch_px / 4
    ref = int(np.argmin(np.abs(tilts)))
    grid = patch_grid(
        (ny, nx), patch_px, settings.spacing_px or 0.75 * patch_px, border_px=limit, centre_px=shifts[ref]
    )
    k = len(grid)
    if k == 0:
        raise TooFewLandmarksError(
            f"no patch of {patch_px} px fits in the {nx} x {ny} px images with a {limit:.0f} px "
            "search margin: use smaller patches (patch_size_A) or bin less"
        )
    tracks = np.full((n, k, 2), np.nan)
    scores = np.full((n, k), np.nan)
    tracks[ref], scores[ref] = grid, 1.0
    cos = np.cos(np.deg2rad(tilts))
    half = patch_px / 2 + 1
    bounds_lo = np.array([-(nx // 2), -(ny // 2)]) + half
    bounds_hi = np.array([nx - nx // 2 - 1, ny - ny // 2 - 1]) - half
    for direction in (1, -1):
        order = [v for v in np.argsort(direction * tilts, kind="stable") if direction * (tilts[v] - tilts[ref]) > 0]
        last = np.full(k, ref)  # last view each patch was found in
        alive = np.ones(k, dtype=bool)
        for v in order:
            prev_pos = tracks[last, np.arange(k)]  # (k, 2)
            factor = cos[v] / cos[last]
            # predicted position: about the specimen centre, across-axis distances scaled
            rel = prev_pos - shifts[last]
            pred = shifts[v] + np.einsum(
                "kab,kb->ka", np.stack([stretch_matrix(tilt_axis_deg, f) for f in factor]), rel
            )
            alive &= np.all((pred >= bounds_lo) & (pred <= bounds_hi), axis=1)
            idx = np.nonzero(alive)[0]
            if len(idx) == 0:
                break
            # reference: the last view's patch in the new view's frame (across-axis stretched by cos_old/cos_new)
            s = np.stack([stretch_matrix(tilt_axis_deg, 1.0 / f) for f in factor[idx]])
            refs = torch.cat(
                [
                    _extract(filt[p], prev_pos[j][None], s[i][None], patch_px, taper)
                    for i, (j, p) in enumerate(zip(idx, last[idx]))
                ]
            )
            here = _extract(filt[v], pred[idx], np.eye(2)[None].repeat(len(idx), 0), patch_px, taper)
            cc = cross_correlation(here, refs)
            norm = (here.norm(dim=(-2, -1)) * refs.norm(dim=(-2, -1))).clamp(min=1e-12)
            for i, j in enumerate(idx):
                d, height = correlation_peak(cc[i], max_shift_px=limit)
                score = height / float(norm[i])
                scores[v, j] = score
                if score >= min_score:
                    tracks[v, j] = pred[j] + d
                    last[j] = v
    return tracks, scores


def split_into_contours(tracks: np.ndarray, tilts_deg: ArrayLike, *, length: int, overlap: int) -> np.ndarray:
    """(n, k', 2): each track cut into pieces of ``length`` views in tilt order, consecutive pieces sharing
    ``overlap`` views (IMOD tiltxcorr's LengthAndOverlap). A patch holds material at many heights, and
    what it shows drifts as the tilt changes; short pieces each get their own 3D point in the solution,
    so that drift is not forced onto one point. Views missing from a track stay gaps in its pieces."""
    if length < 2 or overlap >= length:
        raise ValueError(f"contours of {length} views overlapping by {overlap}: need length ≥ 2 > overlap")
    order = np.argsort(np.asarray(tilts_deg), kind="stable")
    n = len(order)
    starts = list(range(0, max(n - overlap, 1), length - overlap))
    pieces = []
    for j in range(tracks.shape[1]):
        for start in starts:
            views = order[start : start + length]
            piece = np.full((n, 2), np.nan)
            piece[views] = tracks[views, j]
            if np.isfinite(piece[:, 0]).sum() >= 3:
                pieces.append(piece)
    return np.stack(pieces, axis=1) if pieces else np.full((n, 0, 2), np.nan)


def patch_alignment(
    images: ArrayLike | torch.Tensor,
    tilts_deg: ArrayLike,
    tilt_axis_deg: float,
    pixel_size_A: float = 1.0,
    shifts_px: ArrayLike | None = None,
    *,
    settings: PatchAlignmentSettings = PatchAlignmentSettings(),
    tilt_offset_deg: float | None = None,
    thickness_px: float | None = None,
) -> tuple[FiducialSolution, np.ndarray]:
    """Track patches (``track_patches``), keep those seen in enough views, and solve the projection model
    as for fiducials (``solve_fiducial_alignment``); or, with ``settings.layers``, align by layer tracks
    (``layer_alignment.layer_alignment``).

    Parameters
    ----------
    images, tilts_deg, tilt_axis_deg
        The (n, y, x) views to align, their (n,) nominal tilts and the starting tilt axis angle (degrees).
    pixel_size_A
        Å per pixel of ``images`` (the solution's shifts are in Å).
    shifts_px
        (n, 2) coarse (x, y) shifts, pixels (zeros if None): seed the tracking.
    settings
        Tracking and solving options (``PatchAlignmentSettings``).
    tilt_offset_deg, thickness_px
        Layer tracks only: the coarse tilt offset (degrees) and the slab's thickness (pixels); None: estimated.

    Returns
    -------
    solution
        The ``FiducialSolution`` (model shifts in Å).
    tracks
        (n, k, 2) the tracks (pieces) that were solved, pixels from the image centre, NaN = gap.
    """
    if settings.layers is not None:
        n = len(np.asarray(tilts_deg))
        la = layer_alignment(
            images,
            tilts_deg,
            tilt_axis_deg,
            pixel_size_A,
            np.zeros((n, 2)) if shifts_px is None else shifts_px,
            tilt_offset_deg=tilt_offset_deg,
            thickness_px=thickness_px,
            settings=settings.layers,
            passes=settings.layer_passes,
        )
        return la.solution, la.tracks_px
    tracks, _ = track_patches(images, tilts_deg, tilt_axis_deg, shifts_px, settings=settings.tracking)
    n = tracks.shape[0]
    min_views = max(3, int(np.ceil(settings.min_views_fraction * n)))
    tracks = tracks[:, np.isfinite(tracks[..., 0]).sum(axis=0) >= min_views]
    if settings.contour_views:
        tracks = split_into_contours(tracks, tilts_deg, length=settings.contour_views, overlap=settings.contour_overlap)
    if tracks.shape[1] < MIN_LANDMARKS:
        raise TooFewLandmarksError(
            f"patch tracking: {tracks.shape[1]} patches tracked through {min_views} views or more (an alignment "
            f"needs {MIN_LANDMARKS}): lower min_score (now {settings.tracking.min_score:g}), use smaller "
            "patches or a smaller spacing, check the coarse alignment the tracking starts from, or bin less"
        )
    sol = solve_fiducial_alignment(
        tracks,
        tilts_deg,
        tilt_axis_deg,
        pixel_size_A,
        rotation=settings.rotation,
        tilt=settings.tilt,
        group_size=settings.group_size,
        outlier_px=settings.outlier_px,
        level=settings.level,
    )
    if settings.projection_matching:
        sol = _refined_by_projection_matching(images, tilts_deg, pixel_size_A, sol, settings)
    return sol, tracks


def _refined_by_projection_matching(
    images: ArrayLike | torch.Tensor,
    tilts_deg: ArrayLike,
    pixel_size_A: float,
    sol: FiducialSolution,
    settings: PatchAlignmentSettings,
) -> FiducialSolution:
    """``sol`` with its shifts, tilt axis and tilt offset refined by projection matching (``refine_geometry``)
    and the per-view residual of that matching (``view_matching_px``). The patch fit's own residuals stay
    as they were (they describe the tracks)."""
    x = as_tensor(images)
    ny, nx = x.shape[-2:]
    filt = bandpass(x, min(ny, nx) / 4, settings.tracking.high_cut_px)
    filt = filt - filt.mean(dim=(-2, -1), keepdim=True)
    tilts = np.asarray(tilts_deg, dtype=float)
    g = refine_geometry(
        filt,
        tilts,
        sol.tilt_axis_deg,
        sol.model.shift_A / pixel_size_A,
        axis_range_deg=settings.axis_range_deg,
        level=True,
        view_means=x.mean(dim=(-2, -1)).cpu().numpy(),
    )
    model = ProjectionModel(tilts + g.tilt_offset_deg, g.tilt_axis_deg, g.shifts_px * pixel_size_A)
    return replace(
        sol,
        model=model,
        tilt_axis_deg=g.tilt_axis_deg,
        tilt_offset_deg=g.tilt_offset_deg,
        view_matching_px=g.view_residual_px,
        view_matching_score=g.view_score,
    )


__all__ = [
    "PatchAlignmentSettings",
    "PatchTrackingSettings",
    "patch_alignment",
    "patch_grid",
    "split_into_contours",
    "track_patches",
]
