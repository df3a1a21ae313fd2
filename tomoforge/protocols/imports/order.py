"""The acquisition order of a tilt series from its tilt angles and the scheme it was recorded with.

A stack without an mdoc says nothing of the order its images were exposed in, yet each image's
accumulated dose (dose weighting, CTF envelopes) depends on it. The user names the scheme:

- ``dose-symmetric`` (Hagen et al. 2017): the starting tilt, one tilt to the ``first`` side, then groups
  of ``group_size`` tilts alternating sides, starting with the other side; when one side is used up the
  rest of the other follows. With groups of 2 from 0° at 3° steps: 0, +3, −3, −6, +6, +9, −9, −12, +12, …
  — the order of the SerialEM mdocs in the project's test data (and of the Tomography 5 mdoc there, from
  its 10° pretilt).
- ``bidirectional``: from the starting tilt to the end of the ``first`` side, then from the tilt next to
  the start on the other side to its end.
- ``continuous`` (unidirectional): from one end to the other; ``first = "positive"`` starts at the most
  negative tilt and tilts towards positive angles.

The tilts are the actual angles (offsets, missing views and uneven steps are fine): the start is the tilt
nearest ``start_deg``, and each side is taken in order of distance from it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Scheme = Literal["dose-symmetric", "bidirectional", "continuous"]
Side = Literal["positive", "negative"]


def scheme_sequence(
    angles_deg: np.ndarray, scheme: Scheme, *, start_deg: float = 0.0, first: Side = "positive", group_size: int = 2
) -> np.ndarray:
    """The indices of ``angles_deg`` in the order they were exposed.

    Parameters
    ----------
    angles_deg : ndarray, shape (n,)
        Tilt angles (degrees), in any order, all different.
    scheme : {"dose-symmetric", "bidirectional", "continuous"}
        The acquisition scheme (module docstring).
    start_deg : float
        The first exposed tilt (dose-symmetric, bidirectional); the nearest angle is taken.
    first : {"positive", "negative"}
        The side tilted to first after the start (continuous: the direction of tilting).
    group_size : int
        Dose-symmetric: tilts per group (≥ 1).

    Returns
    -------
    ndarray of int, shape (n,)
        ``sequence[k]`` is the index of the (k+1)-th exposed view.
    """
    a = np.asarray(angles_deg, dtype=float).ravel()
    n = len(a)
    if n == 0:
        return np.zeros(0, dtype=int)
    if scheme == "continuous":
        return np.argsort(a if first == "positive" else -a, kind="stable")
    start = int(np.argmin(np.abs(a - start_deg)))
    others = np.delete(np.arange(n), start)
    positive = others[a[others] > a[start]]
    positive = positive[np.argsort(a[positive], kind="stable")]
    negative = others[a[others] <= a[start]]
    negative = negative[np.argsort(-a[negative], kind="stable")]
    near, far = (positive, negative) if first == "positive" else (negative, positive)
    if scheme == "bidirectional":
        return np.concatenate([[start], near, far]).astype(int)
    if scheme != "dose-symmetric":
        raise ValueError(f"unknown acquisition scheme {scheme!r}")
    if group_size < 1:
        raise ValueError(f"group_size must be ≥ 1, not {group_size}")
    sequence = [start, *near[:1].tolist()]
    sides, taken, turn = [far, near], [0, 1], 0
    while taken[0] < len(far) or taken[1] < len(near):
        side = turn % 2 if taken[turn % 2] < len(sides[turn % 2]) else (turn + 1) % 2
        sequence += sides[side][taken[side] : taken[side] + group_size].tolist()
        taken[side] += group_size
        turn += 1
    return np.asarray(sequence, dtype=int)


def order_from_sequence(sequence: np.ndarray) -> np.ndarray:
    """1-based acquisition order of each view from the exposure sequence (``order[sequence[k]] = k + 1``)."""
    sequence = np.asarray(sequence, dtype=int)
    order = np.empty(len(sequence), dtype=int)
    order[sequence] = np.arange(1, len(sequence) + 1)
    return order


def start_distance(angles_deg: np.ndarray, start_deg: float) -> float:
    """How far the tilt nearest ``start_deg`` is from it (degrees)."""
    a = np.asarray(angles_deg, dtype=float)
    return float(np.min(np.abs(a - start_deg))) if len(a) else float("inf")
