"""Removing duplicate picks: of the picks within a distance of each other, the best score is kept.

The result is that of the greedy rule (take the best remaining pick, drop every pick within ``distance_A``
of it, repeat), computed without a Python loop over picks: a pick is decided as soon as it ranks above
every still-undecided neighbour (it is kept, and its neighbours dropped). Each round decides at least the
best undecided pick, and in practice a handful of rounds decide a million.
"""

from __future__ import annotations

import numpy as np


def score_ranks(scores: np.ndarray | None, n: int) -> np.ndarray:
    """Rank of each pick (0 = best): descending score, a missing (NaN) score last, ties in input order.

    Parameters
    ----------
    scores : (n,) float or None
        Scores (higher is better); None ranks the picks in input order.
    n : int
        Number of picks.

    Returns
    -------
    (n,) int64
    """
    if scores is None:
        return np.arange(n, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64).reshape(n)
    key = np.where(np.isnan(s), np.inf, -s)
    order = np.lexsort((np.arange(n), key))
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(n)
    return ranks


def greedy_suppression(pairs: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Greedy non-maximum suppression on a neighbour graph.

    Parameters
    ----------
    pairs : (p, 2) int
        Each unordered pair of picks that are neighbours (within the distance).
    ranks : (n,) int
        Rank of each pick, 0 the best (distinct values).

    Returns
    -------
    (n,) bool
        Kept picks: what taking the best remaining pick and dropping its neighbours, in turn, keeps.
    """
    n = len(ranks)
    undecided = np.ones(n, dtype=bool)
    kept = np.zeros(n, dtype=bool)
    a, b = np.asarray(pairs, dtype=np.int64).reshape(-1, 2).T
    while undecided.any():
        live = undecided[a] & undecided[b]
        a, b = a[live], b[live]
        best_neighbour = np.full(n, np.iinfo(np.int64).max)
        np.minimum.at(best_neighbour, a, ranks[b])
        np.minimum.at(best_neighbour, b, ranks[a])
        winners = undecided & (ranks < best_neighbour)
        kept |= winners
        undecided &= ~winners
        losers = np.zeros(n, dtype=bool)
        losers[b[winners[a]]] = True
        losers[a[winners[b]]] = True
        undecided &= ~losers
    return kept


def remove_duplicates(
    positions_A: np.ndarray,
    distance_A: float,
    *,
    scores: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Which picks to keep so that no two kept picks of one group lie within ``distance_A`` of each other,
    the best-scored pick of each cluster kept (greedy by score).

    Parameters
    ----------
    positions_A : (n, 3) float
        Positions x, y, z in Å.
    distance_A : float
        Picks at this distance or closer are duplicates (Å, ≥ 0).
    scores : (n,) float, optional
        Higher is better; NaN counts as the worst. Without scores the first pick of a cluster is kept.
    groups : (n,) int or str, optional
        Picks of different groups (tomograms) never suppress each other.

    Returns
    -------
    (n,) bool
        The picks kept.
    """
    from scipy.spatial import cKDTree

    positions = np.asarray(positions_A, dtype=np.float64).reshape(-1, 3)
    n = len(positions)
    if distance_A < 0 or not np.isfinite(distance_A):
        raise ValueError(f"distance_A must be a finite number ≥ 0, got {distance_A}")
    ranks = score_ranks(scores, n)
    labels = np.zeros(n, dtype=np.int64) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
    all_pairs = [np.zeros((0, 2), dtype=np.int64)]
    for label in np.unique(labels):  # one tree per tomogram: a few groups, not a loop over picks
        members = np.flatnonzero(labels == label)
        pairs = cKDTree(positions[members]).query_pairs(distance_A, output_type="ndarray")
        all_pairs.append(members[pairs.reshape(-1, 2)])
    return greedy_suppression(np.concatenate(all_pairs), ranks)


__all__ = ["greedy_suppression", "remove_duplicates", "score_ranks"]
