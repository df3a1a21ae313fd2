"""Peaks of a template-matching score map: the threshold, non-maximum suppression, exclusions.

Threshold from accepted false positives (the statistics of Cruz-León et al. 2024 as in pytom-match-pick):
a search over V voxels and R rotations draws V·R scores from noise, close to normal with mean μ (≈ 0) and
standard deviation σ, both of the single-rotation scores (``MatchResult.rotation_score_sd``; the map of the
best score over the rotations has a smaller SD and a positive mean); the score that noise alone exceeds F
times in all is

    threshold = μ + σ · √2 · erfc⁻¹(2 F / (V · R)).

Or a plain n-sigma: mean + n · σ. Peaks are the local maxima above it, thinned so that no two are closer
than a minimum distance (the better kept: a greedy non-maximum suppression, computed in rounds over the
candidate pairs), at most a maximum count, none within a distance of the edges or of gold beads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tomoforge.errors import UserError


class PeakError(UserError, ValueError):
    """A peak-extraction setting out of range."""


def false_positive_threshold(
    sd: float, n_voxels: int, n_rotations: int, false_positives: float = 1.0, *, mean: float = 0.0
) -> float:
    """The score noise exceeds ``false_positives`` times in a search of ``n_voxels`` × ``n_rotations`` scores
    of mean ``mean`` and standard deviation ``sd`` (those of single rotations): mean + sd · √2 · erfc⁻¹(2 F / (V R))."""
    from scipy.special import erfcinv

    searched = float(n_voxels) * float(n_rotations)
    if not 0 < false_positives < searched / 2:
        raise PeakError(
            f"false_positives {false_positives}: allowed above 0 and below {searched / 2:g} (half the scores)"
        )
    return float(mean + sd * np.sqrt(2.0) * erfcinv(2.0 * false_positives / searched))


def edge_mask(shape: tuple[int, int, int], edge_px: int) -> np.ndarray:
    """Boolean (z, y, x): True at least ``edge_px`` voxels from every face."""
    keep = np.zeros(shape, dtype=bool)
    inner = tuple(slice(edge_px, max(edge_px, s - edge_px)) for s in shape)
    keep[inner] = True
    return keep


def score_statistics(scores: np.ndarray, where: np.ndarray | None = None) -> tuple[float, float]:
    """Mean and standard deviation of the score map (over ``where`` when given, e.g. away from the edges)."""
    values = scores[where] if where is not None else scores.ravel()
    values = values[np.isfinite(values)]
    return float(values.mean()), float(values.std())


def non_maximum_suppression(positions: np.ndarray, values: np.ndarray, min_distance: float) -> np.ndarray:
    """Indices of the points (k, 3) kept by greedy suppression: best first, each point dropped when a kept
    point with a higher value lies within ``min_distance``. Computed in rounds over the close pairs: a point
    is dropped once a better neighbour is kept, kept once every better neighbour is dropped."""
    from scipy.spatial import cKDTree

    order = np.argsort(-values, kind="stable")
    pts = positions[order]
    k = len(pts)
    if k == 0 or min_distance <= 0:
        return order
    pairs = cKDTree(pts).query_pairs(min_distance * (1 - 1e-9), output_type="ndarray")
    if len(pairs) == 0:
        return order
    hi, lo = pairs.min(axis=1), pairs.max(axis=1)  # rank: smaller index = better
    state = np.zeros(k, dtype=np.int8)  # 0 undecided, 1 kept, −1 dropped
    while True:
        undecided = state == 0
        if not undecided.any():
            break
        kept_above = np.bincount(lo, weights=(state[hi] == 1), minlength=k) > 0
        open_above = np.bincount(lo, weights=(state[hi] == 0), minlength=k)
        state[undecided & kept_above] = -1
        state[undecided & ~kept_above & (open_above == 0)] = 1
    return order[state == 1]


@dataclass
class Peaks:
    """Peak positions (k, 3) as (z, y, x) voxel indices, the same refined to a fraction of a voxel, their scores
    (k,), best first, and the threshold."""

    positions_zyx: np.ndarray
    scores: np.ndarray
    threshold: float
    refined_zyx: np.ndarray


def subvoxel_positions(scores: np.ndarray, positions_zyx: np.ndarray) -> np.ndarray:
    """Peak positions (k, 3) refined along each axis by the parabola through the peak and its two neighbours
    (the vertex, within ±0.5 voxel; unchanged at a face or where the curve is not concave); float64."""
    pos = np.asarray(positions_zyx, dtype=np.int64).reshape(-1, 3)
    out = pos.astype(np.float64)
    shape = np.array(scores.shape)
    centre = scores[tuple(pos.T)].astype(np.float64)
    for axis in range(3):
        inside = (pos[:, axis] > 0) & (pos[:, axis] < shape[axis] - 1)
        lo, hi = pos.copy(), pos.copy()
        lo[:, axis] = np.clip(lo[:, axis] - 1, 0, shape[axis] - 1)
        hi[:, axis] = np.clip(hi[:, axis] + 1, 0, shape[axis] - 1)
        a, b = scores[tuple(lo.T)].astype(np.float64), scores[tuple(hi.T)].astype(np.float64)
        curve = a - 2 * centre + b
        ok = inside & (curve < 0) & np.isfinite(a) & np.isfinite(b)
        step = np.where(ok, 0.5 * (a - b) / np.where(ok, curve, -1.0), 0.0)
        out[:, axis] += np.clip(step, -0.5, 0.5)
    return out


def find_peaks(
    scores: np.ndarray,
    *,
    threshold: float,
    min_distance_px: float,
    max_count: int | None = None,
    edge_px: int = 0,
    exclude_zyx_px: np.ndarray | None = None,
    exclude_radius_px: float = 0.0,
) -> Peaks:
    """Peaks of a score map.

    Parameters
    ----------
    scores : (z, y, x)
        The score map.
    threshold : float
        Least score of a peak (e.g. ``false_positive_threshold``).
    min_distance_px : float
        No two peaks closer than this (voxels): the better kept.
    max_count : int, optional
        Keep the best this many.
    edge_px : int
        No peak within this many voxels of a face.
    exclude_zyx_px : (b, 3), optional
        Positions (z, y, x voxels) of gold beads or other features: no peak within ``exclude_radius_px``.

    Returns
    -------
    Peaks
    """
    from scipy.ndimage import maximum_filter
    from scipy.spatial import cKDTree

    if min_distance_px < 0 or edge_px < 0 or (max_count is not None and max_count < 1):
        raise PeakError(
            f"min_distance_px ({min_distance_px}) and edge_px ({edge_px}) must be ≥ 0, max_count ({max_count}) ≥ 1"
        )
    s = np.where(np.isfinite(scores), scores, -np.inf).astype(np.float32)
    local = (maximum_filter(s, size=3, mode="nearest") == s) & (s >= threshold) & edge_mask(s.shape, edge_px)
    positions = np.argwhere(local)
    values = s[local]
    if exclude_zyx_px is not None and len(exclude_zyx_px) and exclude_radius_px > 0 and len(positions):
        near = cKDTree(np.asarray(exclude_zyx_px, dtype=float).reshape(-1, 3)).query(positions, k=1)[0]
        positions, values = positions[near > exclude_radius_px], values[near > exclude_radius_px]
    kept = non_maximum_suppression(positions.astype(float), values, min_distance_px)
    if max_count is not None:
        kept = kept[:max_count]
    return Peaks(positions[kept], values[kept], float(threshold), subvoxel_positions(s, positions[kept]))
