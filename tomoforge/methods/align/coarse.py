"""Coarse alignment: shifts between views by cross-correlation with cosine stretching (IMOD tiltxcorr).

Views are aligned outwards from the lowest tilt. Every reference is made in the untilted frame
(the tilt-axis frame with across-axis distances divided by cos β) and then mapped into the frame of
the view being aligned, so a lower tilt is stretched by cos β_view / cos β_ref across the axis.
The reference is the previous view or, with ``cumulative``, the sum of all views aligned so far
in that direction. Images are band-passed and edge-tapered first. This chain is then refined by
projection matching (``geometry.refine_geometry``: each view against the reprojection of the
others over the specimen slab, whose thickness is found from the data), which removes the drift that a
thick specimen or gold on two surfaces gives the chain, and finds the tilt axis (the angle at which the
views agree best with the reprojections) and the tilt offset that levels the slab.

Shifts are (x, y) pixels: where the specimen centre lands in each view, the lowest tilt at 0
(RELION's XShift/YShift divided by the pixel size); after refinement the specimen centre is the
middle of the slab found.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.typing import ArrayLike

from tomoforge.methods.align.axis_scan import AxisScan, scan_tilt_axis, without_outliers
from tomoforge.methods.align.filters import bandpass, correlation_peak, cross_correlation, edge_taper
from tomoforge.methods.align.geometry import refine_geometry
from tomoforge.methods.align.projection_model import ProjectionModel
from tomoforge.methods.align.transform import rotation_2d, warp_images
from tomoforge.methods.binning import bin_images
from tomoforge.methods.fourier import as_tensor

# The chain without the views' outliers: pixels further than this many robust SD from a view's median, and
# those within this many pixels of them, set to the median (``axis_scan.without_outliers``; 10 nm gold at 8 Å/px).
# Not the 3 SD at which the axis scan may set dense beads aside: the chain then loses too much of the specimen
# (issue 16's series with 40 beads: seed 2 3.1 px of 2 Å RMS, seed 6 66 px, against 0.51 and 0.56 at 4 SD).
OUTLIER_SD = 4.0
OUTLIER_GROW_PX = 2


def stretch_matrix(tilt_axis_deg: float, factor: float) -> np.ndarray:
    """2x2 map scaling distances across the tilt axis by ``factor`` (axis from Y, CCW)."""
    r = rotation_2d(tilt_axis_deg)
    return r @ np.diag([factor, 1.0]) @ r.T


@dataclass
class CoarseResult:
    """Coarse shifts (px), those of the chain alone, and the specimen slab used to refine them."""

    shifts_px: np.ndarray  # (n, 2)
    chain_shifts_px: np.ndarray  # (n, 2)
    thickness_px: float | None = None  # None: not refined
    z_centre_px: float | None = None  # slab centre above the plane the chain followed
    step_rms_px: tuple[float, ...] = ()
    tilt_axis_deg: float | None = None  # found by projection matching (None: not refined)
    tilt_offset_deg: float = 0.0  # to add to the nominal tilts (levels the specimen)
    view_residual_px: np.ndarray | None = None  # (n,) last projection-matching offset per view
    view_score: np.ndarray | None = None  # (n,) correlation of each view with the reprojection of the others
    axis_scan: AxisScan | None = None  # the half-turn scan of the tilt axis (None: not scanned)
    start_axis_deg: float | None = None  # the axis the chain used: the given one, or the scan's when far off
    chain_drift_px: np.ndarray | None = None  # (n,) the chain against projection matching (``chain_drift_px``)
    thickness_mfp: float | None = None  # T/λ from the view means (``geometry.attenuation_thickness``)
    chain_source: str = "views"  # the chain kept: "views", or "without outliers" (gold beads masked)
    candidate_scores: dict[str, float] = field(default_factory=dict)  # mean view score of each chain refined
    chains_apart_px: float | None = None  # RMS between the two chains (gauge removed; None: one chain)


def chain_shifts(
    filtered: torch.Tensor,
    tilts_deg: ArrayLike,
    tilt_axis_deg: float,
    taper: torch.Tensor,
    *,
    cumulative: bool,
    limit: float,
) -> np.ndarray:
    """(n, 2) (x, y) shifts (pixels) of band-passed, tapered (n, y, x) views by stretched correlation outwards
    from the lowest tilt (``tilts_deg``, degrees), each step searching within ``limit`` pixels of the
    previous view's shift; ``taper``: (y, x) edge weights; ``cumulative``: correlate with the sum of the
    views aligned so far in that direction."""
    n = filtered.shape[0]
    tilts = np.asarray(tilts_deg, dtype=float)
    cos = np.cos(np.deg2rad(tilts))
    shifts = np.zeros((n, 2))
    ref = int(np.argmin(np.abs(tilts)))
    for direction in (1, -1):
        order = [v for v in np.argsort(direction * tilts, kind="stable") if direction * (tilts[v] - tilts[ref]) > 0]
        prev = ref
        accumulated: torch.Tensor | None = None
        for v in order:
            # untilted frame of the previous view: output(x) = prev(s_prev + M(cos β_prev) x)
            untilted = warp_images(filtered[prev], stretch_matrix(tilt_axis_deg, cos[prev]), shifts[prev])
            if cumulative:
                accumulated = untilted if accumulated is None else accumulated + untilted
                untilted = accumulated
            reference = warp_images(untilted, stretch_matrix(tilt_axis_deg, 1.0 / cos[v]), np.zeros(2)) * taper
            cc = cross_correlation(filtered[v], reference)
            shift, _ = correlation_peak(cc, max_shift_px=limit, centre_px=shifts[prev])
            shifts[v] = shift
            prev = v
    return shifts


def chains_apart_px(a_px: np.ndarray, b_px: np.ndarray, tilts_deg: ArrayLike, tilt_axis_deg: float) -> float:
    """RMS (px) of the difference between two chains of (n, 2) shifts after removing the best 3D translation of
    the specimen seen through the tilts about ``tilt_axis_deg`` (``chain_drift_px`` of one against the other)."""
    return float(np.sqrt(np.mean(chain_drift_px(a_px, b_px, tilts_deg, tilt_axis_deg) ** 2)))


def chain_drift_px(
    chain_px: np.ndarray, refined_px: np.ndarray, tilts_deg: ArrayLike, tilt_axis_deg: float
) -> np.ndarray:
    """(n,) how far (px) the correlation chain put the specimen centre from where projection matching put it,
    per view, after removing the best 3D translation of the specimen (the free gauge, seen through the
    tilts about ``tilt_axis_deg``): the chain's drift, which grows along each branch from the lowest tilt."""
    a = ProjectionModel(tilts_deg, tilt_axis_deg, np.zeros_like(chain_px)).matrices()
    e = np.asarray(chain_px, dtype=float) - np.asarray(refined_px, dtype=float)
    t, *_ = np.linalg.lstsq(a.reshape(-1, 3), e.reshape(-1), rcond=None)
    return np.asarray(np.linalg.norm(e - a @ t, axis=1))


def coarse_alignment(
    images: ArrayLike | torch.Tensor,
    tilts_deg: ArrayLike,
    tilt_axis_deg: float,
    *,
    low_cut_px: float = 0.0,
    high_cut_px: float = 2.0,
    cumulative: bool = True,
    max_shift_px: float | None = None,
    taper_px: float | None = None,
    refine_iterations: int = 3,
    thickness_px: float | None = None,
    axis_range_deg: float = 2.0,
    level: bool = True,
    scan_axis: bool = True,
    axis_tolerance_deg: float = 6.0,
    outlier_chain: bool = True,
    chains_agree_px: float = 1.0,
) -> CoarseResult:
    """Coarse alignment: the stretched-correlation chain, then rounds of projection matching.

    Parameters
    ----------
    images, tilts_deg, tilt_axis_deg
        The (n, y, x) views to align, at (n,) nominal tilts about the given tilt axis (degrees; the axis
        measured from image Y, counter-clockwise).
    low_cut_px
        High-pass period, pixels: features larger than this are removed (0: a quarter of the image).
    high_cut_px
        Low-pass period at which the gain is 1/e, pixels.
    cumulative
        Correlate with the sum of the views aligned so far (else with the previous view).
    max_shift_px
        Search radius per step, pixels (default a quarter of the image).
    taper_px
        Width of the cosine edge taper, pixels (default a tenth of the image).
    refine_iterations
        Rounds of projection matching (0: the chain alone).
    thickness_px
        Specimen slab thickness for the reprojections, pixels (default: found from the data).
    axis_range_deg
        Search the tilt axis within this of ``tilt_axis_deg`` by projection matching (0: keep it).
    scan_axis
        Scan the tilt axis over the whole half-turn first (``axis_scan.scan_tilt_axis``): where the best angle
        is more than ``axis_tolerance_deg`` (and ``axis_range_deg``) from the given one and clearly better (more
        than half of the scan's range of scores above the given angle's: ``AxisScan.clear_gain``), the chain
        starts from it and projection matching searches ``axis_tolerance_deg`` about it.
    axis_tolerance_deg
        How far (degrees, modulo 180°) the scan's angle may be from the given one before it replaces it.
    level
        Find the tilt offset that levels the specimen (from the views' mean intensities where they follow
        Beer–Lambert's law, else from the slab's extent).
    outlier_chain
        Where the axis scan scored the views without their outliers (gold beads with a specimen), also make the
        chain from those views; where the two chains are more than ``chains_agree_px`` apart (RMS, pixels, the
        free 3D translation removed), refine both and keep the one whose views agree better with the
        reprojection of the others (a chain locked onto one bead layer per branch is not fixed by projection
        matching started from it).

    Returns
    -------
    CoarseResult
        (n, 2) (x, y) shifts in pixels (where the specimen centre lands; the lowest tilt at 0), those of the
        chain alone, and the slab the refinement used.
    """
    x = as_tensor(images)
    ny, nx = x.shape[-2:]
    low = low_cut_px or min(ny, nx) / 4
    taper = edge_taper((ny, nx), taper_px or min(ny, nx) / 10, x.device)
    filt = bandpass(x, low, high_cut_px)
    filt = filt - filt.mean(dim=(-2, -1), keepdim=True)
    limit = max_shift_px or min(ny, nx) / 4
    scan = scan_tilt_axis(filt, tilts_deg, tilt_axis_deg, max_shift_px=limit) if scan_axis else None
    start = float(tilt_axis_deg)
    if (
        scan is not None
        and scan.off_by_deg(start) > max(axis_tolerance_deg, axis_range_deg)
        and scan.clear_gain() > 0.5
    ):
        start, axis_range_deg = scan.best_deg, max(axis_range_deg, axis_tolerance_deg)
    chain = chain_shifts(filt * taper, tilts_deg, start, taper, cumulative=cumulative, limit=limit)
    chains = {"views": chain}
    apart = None
    if scan is not None and scan.masked and outlier_chain:
        clean = without_outliers(filt, OUTLIER_SD, OUTLIER_GROW_PX)
        clean = clean - clean.mean(dim=(-2, -1), keepdim=True)
        other = chain_shifts(clean * taper, tilts_deg, start, taper, cumulative=cumulative, limit=limit)
        apart = chains_apart_px(chain, other, tilts_deg, start)
        if apart > chains_agree_px:
            chains["without outliers"] = other
    if refine_iterations <= 0:
        return CoarseResult(
            chain,
            chain,
            tilt_axis_deg=None if start == tilt_axis_deg else start,
            axis_scan=scan,
            start_axis_deg=start,
            chains_apart_px=apart,
        )
    # Projection matching at a sampling the low-pass allows (its gain is 0.1 at the new Nyquist):
    # the same accuracy in Å for a quarter of the work per halving.
    factor = max(1, int(high_cut_px / 3))
    small = bin_images(filt, factor) if factor > 1 else filt
    refinements = {
        name: refine_geometry(
            small,
            tilts_deg,
            start,
            c / factor,
            iterations=refine_iterations,
            thickness_px=None if thickness_px is None else thickness_px / factor,
            axis_range_deg=axis_range_deg,
            level=level,
            view_means=x.mean(dim=(-2, -1)).cpu().numpy(),
            taper_px=None if taper_px is None else taper_px / factor,
        )
        for name, c in chains.items()
    }
    scores = {name: float(r.view_score.mean()) for name, r in refinements.items()}
    source = max(scores, key=lambda k: scores[k])
    chain, refined = chains[source], refinements[source]
    shifts = refined.shifts_px * factor
    return CoarseResult(
        shifts,
        chain,
        refined.thickness_px * factor,
        refined.z_centre_px * factor,
        tuple(s * factor for s in refined.step_rms_px),
        refined.tilt_axis_deg,
        refined.tilt_offset_deg,
        refined.view_residual_px * factor,
        refined.view_score,
        scan,
        start,
        chain_drift_px(chain, shifts, tilts_deg, refined.tilt_axis_deg),
        refined.thickness_mfp,
        source,
        scores if len(scores) > 1 else {},
        apart,
    )


__all__ = ["stretch_matrix", "CoarseResult", "chain_drift_px", "chain_shifts", "chains_apart_px", "coarse_alignment"]
